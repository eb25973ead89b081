"""Resuming a study whose trials are not comparable with the spec is refused (issue 7.16).

The metric, the search space, the data, the trainer and the fidelity are recorded on the
study; a rerun that changed any of them names what changed and exits 2, unless
``--accept-changed-study``. Changing limits or the strategy resumes as before.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from kubetune.cli.main import main
from kubetune.core.fingerprint import FINGERPRINT_ATTR
from kubetune.core.storage import open_storage

SPEC = """\
name: fp
objective: {metric: val_accuracy}
data: {source: data.csv, target: y}
trainer: {kind: sklearn, estimator: sklearn.neighbors.KNeighborsClassifier}
search_space: {n_neighbors: {type: int, low: 1, high: 9}}
strategy: {name: random}
limits: {max_trials: 3, parallel: 1}
"""


def _data(seed: int) -> str:
    rows = [f"{(i * 7 + seed) % 13},{(i * 3) % 5},{i % 2}" for i in range(80)]
    return "a,b,y\n" + "\n".join(rows) + "\n"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "spec.yaml").write_text(SPEC)
    (tmp_path / "data.csv").write_text(_data(0))
    monkeypatch.chdir(tmp_path)
    assert main(["run", "spec.yaml"]) == 0
    return tmp_path


def _trials(workdir: Path) -> int:
    storage = open_storage(str(workdir / "kubetune-runs" / "fp" / "study.journal"))
    study = optuna.load_study(study_name="fp", storage=storage)
    assert set(study.user_attrs[FINGERPRINT_ATTR]) >= {"objective", "search_space", "data"}
    return len(study.trials)


@pytest.mark.parametrize(
    ("change", "part"),
    [
        (("high: 9", "high: 15"), "search_space"),
        (("metric: val_accuracy", "metric: val_f1"), "objective"),
        (("KNeighborsClassifier}", "KNeighborsClassifier, report_steps: 2}"), "trainer"),
        (None, "data"),
        (("parallel: 1}", "parallel: 1}\nseed: 4"), "data"),  # another split of the rows
    ],
)
def test_a_changed_study_is_refused_and_names_the_change(
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
    change: tuple[str, str] | None,
    part: str,
) -> None:
    if change is None:
        (workdir / "data.csv").write_text(_data(5))
    else:
        spec = workdir / "spec.yaml"
        spec.write_text(spec.read_text().replace(*change))
    capsys.readouterr()
    assert main(["run", "spec.yaml", "--max-trials", "5"]) == 2
    err = capsys.readouterr().err
    assert f"holds trials run with another {part};" in err and "--accept-changed-study" in err
    assert _trials(workdir) == 3  # nothing ran

    assert main(["run", "spec.yaml", "--max-trials", "5", "--accept-changed-study"]) == 0
    assert _trials(workdir) == 5
    assert main(["run", "spec.yaml", "--max-trials", "6"]) == 0  # the new parts now stand


def test_limits_and_strategy_may_change(workdir: Path) -> None:
    spec = workdir / "spec.yaml"
    spec.write_text(spec.read_text().replace("{name: random}", "{name: tpe}"))
    assert main(["run", "spec.yaml", "--max-trials", "4"]) == 0
    assert _trials(workdir) == 4
