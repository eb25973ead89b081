"""``kubetune trial --spec S --request R --output O [--progress P]``: one trial, as a pod runs it.

Exit codes: 0 done (the result file says completed or pruned), 2 unusable command line or
request, 3 invalid config (never retried), 4 the trial failed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from kubetune.cli.main import main
from kubetune.core.trial import ExitCode, TrialOutcome, TrialStatus
from kubetune.storage import atomic

SPEC = """\
name: tiny-digits
objective: {metric: accuracy}
data: {source: "sklearn:digits"}
trainer: {kind: torch-mlp}
search_space:
  units: {type: int, low: 16, high: 32}
  lr: {type: float, low: 1.0e-3, high: 3.0e-2, log: true}
fidelity: {param: epochs, min: 1, max: 3}
"""


def _request(number: int = 0, **params: Any) -> dict[str, Any]:
    return {
        "study": "tiny-digits",
        "number": number,
        "params": params or {"n_layers": 1, "units": 32, "lr": 0.01, "batch_size": 128},
        "seed": 7,
        "budget": 3,
        "attempt": 1,
    }


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC)
    return path


def _write_request(tmp_path: Path, request: dict[str, Any], name: str = "request.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(request))
    return path


def test_valid_request_completes_with_metrics_curve_and_progress(
    spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request = _write_request(tmp_path, _request())
    # Neither folder exists yet: the command creates them.
    output, progress = tmp_path / "out" / "result.json", tmp_path / "log" / "progress.jsonl"
    code = main(
        [
            "trial",
            "--spec",
            str(spec),
            "--request",
            str(request),
            "--output",
            str(output),
            "--progress",
            str(progress),
        ]
    )
    assert code == ExitCode.OK, capsys.readouterr().err

    result = json.loads(output.read_text())
    assert result["status"] == "completed" and result["failure"] is None
    # the objective is named as the trial reports it, although the spec said "accuracy"
    assert result["value"] == pytest.approx(result["metrics"]["val_accuracy"])
    assert 0.5 < result["value"] <= 1.0
    assert {"val_accuracy", "val_f1", "val_log_loss", "val_roc_auc"} <= set(result["metrics"])
    assert [step for step, _ in result["curve"]] == [1, 2, 3]  # one point per epoch of budget
    assert result["curve"][-1][1] == pytest.approx(result["value"])
    assert result["duration_s"] > 0
    assert TrialOutcome.from_dict(result).status is TrialStatus.COMPLETED

    lines = [json.loads(line) for line in progress.read_text().splitlines()]
    assert [(p["step"], p["value"]) for p in lines] == [tuple(c) for c in result["curve"]]
    assert "trial 0: completed val_accuracy=" in capsys.readouterr().err


@pytest.mark.reliability
def test_invalid_config_exits_3_and_is_recorded(
    spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request = _write_request(tmp_path, _request(number=4, n_layers=1, units=32, learning_rate=0.1))
    output = tmp_path / "result.json"
    code = main(["trial", "--spec", str(spec), "--request", str(request), "--output", str(output)])
    assert code == ExitCode.INVALID_CONFIG == 3
    result = json.loads(output.read_text())
    assert result["status"] == "failed"
    assert result["failure"] == "invalid_config"
    assert "'learning_rate'" in result["message"] and result["value"] is None
    assert result["curve"] == []  # rejected before training
    assert "trial 4: failed" in capsys.readouterr().err


@pytest.mark.parametrize(
    "content", [None, "{not json", "[1, 2]", '{"study": "s", "number": 0}', '{"bogus": 1}']
)
@pytest.mark.reliability
def test_unreadable_request_exits_2_without_a_result(
    spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None
) -> None:
    request = tmp_path / "request.json"
    if content is not None:
        request.write_text(content)
    output = tmp_path / "result.json"
    code = main(["trial", "--spec", str(spec), "--request", str(request), "--output", str(output)])
    assert code == ExitCode.USAGE == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot read trial request {request}")
    assert "Traceback" not in err
    assert not output.exists()


@pytest.mark.reliability
def test_bad_spec_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.replace("metric: accuracy", "metric: test_accuracy"))
    request = _write_request(tmp_path, _request())
    output = tmp_path / "result.json"
    code = main(["trial", "--spec", str(spec), "--request", str(request), "--output", str(output)])
    assert code == 2
    assert "objective.metric" in capsys.readouterr().err
    assert not output.exists()


@pytest.mark.parametrize("name", ["result.json", "result.tmp", "result"])
@pytest.mark.reliability
def test_result_is_written_whole_then_renamed(
    spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    output = tmp_path / "out" / name
    output.parent.mkdir()
    renames: list[tuple[Path, Path]] = []
    real_replace = os.replace

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        src, dst = Path(src), Path(dst)
        # at the moment of the rename the final file does not exist yet and the
        # temporary file next to it already holds the complete result
        assert src != dst and src.parent == dst.parent
        assert not dst.exists()
        assert json.loads(src.read_text())["status"] == "failed"
        renames.append((src, dst))
        real_replace(src, dst)

    class OsWithCheckedReplace:  # only the atomic writer's os.replace is watched
        def __getattr__(self, attr: str) -> Any:
            return replace if attr == "replace" else getattr(os, attr)

    monkeypatch.setattr(atomic, "os", OsWithCheckedReplace())
    request = _write_request(tmp_path, _request(units=32, nope=1))  # fails fast: no training
    code = main(["trial", "--spec", str(spec), "--request", str(request), "--output", str(output)])
    assert code == 3
    assert [dst for _, dst in renames] == [output]
    assert json.loads(output.read_text())["failure"] == "invalid_config"
    assert sorted(p.name for p in output.parent.iterdir()) == [name]  # no temporary left
