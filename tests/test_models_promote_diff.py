"""``kubetune models promote`` and ``models diff``. ``ModelsCommandsConformance`` runs on a
local folder here and on simulated S3 (moto server) in ``test_s3.py``."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from kubetune.cli.main import main
from kubetune.errors import RepositoryError
from kubetune.repository import ModelRepository, open_repository
from kubetune.repository.repository import AliasMovedError
from test_repository import make_model_dir, push_kwargs


class ModelsCommandsConformance:
    """Subclasses provide ``repo_uri``: an empty model repository's location."""

    @pytest.fixture
    def repo(self, repo_uri: str, tmp_path: Path) -> ModelRepository:
        """A repository with versions 1 and 2 of ``iris`` (different params, metrics, data
        and files) and none of them promoted."""
        repo = open_repository(repo_uri)
        repo.push("iris", make_model_dir(tmp_path / "m1", "a"), **push_kwargs())
        second = make_model_dir(tmp_path / "m2", "b")
        (second / "extra" / "vocab.txt").write_text("vocab a\n")  # same as in v1
        (second / "tokenizer.json").write_text("{}")
        (second / "config.json").unlink()
        repo.push(
            "iris",
            second,
            **push_kwargs(
                params={"lr": 0.02, "layers": 2, "act": "relu", "dropout": 0.1},
                metrics={"accuracy": 0.95},
                data_fingerprint="e" * 64,
            ),
        )
        return repo

    def _cli(self, repo: ModelRepository, *args: str) -> int:
        return main(["models", "--model-repo", repo.uri, *args])

    def test_promote_prints_old_and_new(
        self, repo: ModelRepository, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert self._cli(repo, "promote", "iris", "1", "--alias", "production") == 0
        assert capsys.readouterr().out == "iris: production none -> 1\n"
        assert self._cli(repo, "promote", "iris", "latest", "--alias", "production") == 0
        assert capsys.readouterr().out == "iris: production 1 -> 2\n"
        assert repo.aliases("iris") == {"production": 2}
        args = ("promote", "iris", "1", "--alias", "production", "--output", "json")
        assert self._cli(repo, *args) == 0
        moved = json.loads(capsys.readouterr().out)
        assert (moved["alias"], moved["previous"], moved["version"]) == ("production", 2, 1)
        assert moved["repository"] == repo.uri
        stored = json.loads(repo.store.get_bytes("iris/aliases/production.json"))
        assert (stored["version"], stored["previous"]) == (1, 2)

    def test_promote_refuses_an_unknown_version(
        self, repo: ModelRepository, capsys: pytest.CaptureFixture[str]
    ) -> None:
        repo.set_alias("iris", "production", 1)
        assert self._cli(repo, "promote", "iris", "9", "--alias", "production") == 2
        assert "no version 9; versions: 1, 2" in capsys.readouterr().err
        assert self._cli(repo, "promote", "nope", "1", "--alias", "production") == 2
        assert "no model 'nope'" in capsys.readouterr().err
        assert self._cli(repo, "promote", "iris", "2", "--alias", "Bad Alias") == 2
        assert "invalid alias" in capsys.readouterr().err
        assert repo.aliases("iris") == {"production": 1}

    def test_promote_with_expect_refuses_a_moved_alias(
        self, repo: ModelRepository, capsys: pytest.CaptureFixture[str]
    ) -> None:
        repo.set_alias("iris", "production", 2)
        promote = ("promote", "iris", "1", "--alias", "production")
        assert self._cli(repo, *promote, "--expect", "1") == 2
        assert "moved from 1 to 2" in capsys.readouterr().err
        assert self._cli(repo, *promote, "--expect", "none") == 2
        assert repo.aliases("iris") == {"production": 2}
        assert self._cli(repo, *promote, "--expect", "2") == 0
        assert capsys.readouterr().out == "iris: production 2 -> 1\n"

    def test_concurrent_expecting_promotes_cannot_both_win(
        self, repo: ModelRepository, tmp_path: Path
    ) -> None:
        """Two promoters decided on the same current version; exactly one move happens,
        the other is told where the alias is now."""
        repo.push("iris", make_model_dir(tmp_path / "m3", "c"), **push_kwargs())
        repo.set_alias("iris", "production", 1)
        barrier = threading.Barrier(2)
        outcomes: dict[int, object] = {}

        def promote(target: int) -> None:
            mine = open_repository(repo.uri)
            barrier.wait(timeout=30)
            try:
                outcomes[target] = mine.set_alias("iris", "production", target, expect=1)
            except AliasMovedError as exc:
                outcomes[target] = exc

        threads = [threading.Thread(target=promote, args=(v,)) for v in (2, 3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [v for v, result in outcomes.items() if result == 1]  # previous was 1
        losers = [v for v, result in outcomes.items() if isinstance(result, AliasMovedError)]
        assert len(winners) == 1 and len(losers) == 1
        assert repo.resolve("iris", "production") == winners[0]
        assert outcomes[losers[0]].found == winners[0]  # type: ignore[attr-defined]

    def test_diff_text(self, repo: ModelRepository, capsys: pytest.CaptureFixture[str]) -> None:
        repo.set_alias("iris", "production", 2)
        assert self._cli(repo, "diff", "iris", "1", "production") == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0] == "iris: v1 -> v2 (production)"
        text = "\n".join(lines)
        assert "params:" in text and "metrics:" in text
        param_lines = {line.split()[0]: line.split()[1:] for line in lines if "->" in line[4:]}
        assert param_lines["lr"] == ["0.01", "->", "0.02"]
        assert param_lines["dropout"] == ["-", "->", "0.1"]
        assert param_lines["accuracy"] == ["0.93", "->", "0.95", "(+0.02)"]
        assert f"data: changed ({'f' * 12} -> {'e' * 12})" in lines
        assert "files: 1 changed, 1 added, 1 removed, 1 same" in lines
        assert "  changed  model.safetensors" in lines
        assert "  added    tokenizer.json" in lines
        assert "  removed  config.json" in lines

    def test_diff_json_and_identical(
        self, repo: ModelRepository, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert self._cli(repo, "diff", "iris", "2", "1", "--output", "json") == 0
        diff = json.loads(capsys.readouterr().out)
        assert (diff["a"]["version"], diff["b"]["version"], diff["identical"]) == (2, 1, False)
        assert diff["params"]["lr"] == {"a": 0.02, "b": 0.01}
        assert diff["params"]["dropout"] == {"a": 0.1, "b": None}
        assert "layers" not in diff["params"]  # same on both sides
        assert diff["metrics"] == {"accuracy": {"a": 0.95, "b": 0.93}}
        assert diff["data_fingerprint"]["same"] is False
        assert diff["files"] == {
            "added": ["config.json"],
            "removed": ["tokenizer.json"],
            "changed": ["model.safetensors"],
            "same": 1,
        }
        assert self._cli(repo, "diff", "iris", "1", "latest") == 0
        capsys.readouterr()
        assert self._cli(repo, "diff", "iris", "2", "latest") == 0
        out = capsys.readouterr().out
        assert "identical" in out and "files: 0 changed, 0 added, 0 removed, 3 same" in out

    def test_diff_unknown_reference(
        self, repo: ModelRepository, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert self._cli(repo, "diff", "iris", "1", "staging") == 2
        assert "no alias 'staging'" in capsys.readouterr().err


class TestModelsCommandsOnLocalFolder(ModelsCommandsConformance):
    @pytest.fixture
    def repo_uri(self, tmp_path: Path) -> str:
        return str(tmp_path / "model-repo")


def test_promote_expect_must_be_a_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = open_repository(tmp_path / "r")
    repo.push("iris", make_model_dir(tmp_path / "m"), **push_kwargs())
    code = main(
        [
            "models",
            "--model-repo",
            repo.uri,
            "promote",
            "iris",
            "1",
            "--alias",
            "p",
            "--expect",
            "x",
        ]
    )
    assert code == 2
    assert "--expect: a version number or 'none'" in capsys.readouterr().err
    with pytest.raises(RepositoryError):
        repo.resolve("iris", "p")
