"""Mistakes that would fail every trial are refused before the first one (issue 7.8).

Each used to burn the whole trial budget on identical failures, with `validate` calling the
spec valid and `run` exiting 1. Now `validate` and `run` both stop with exit 2 and one
`error:` line naming the field, and `run` starts no trial.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kubetune.cli.main import main

BASE = """\
name: pre
objective: {metric: val_accuracy}
data: {source: "sklearn:iris"}
trainer: {kind: sklearn, estimator: sklearn.neighbors.KNeighborsClassifier}
search_space: {n_neighbors: {type: int, low: 1, high: 9}}
limits: {max_trials: 3}
"""

CASES = [
    (
        "misspelled-estimator",
        ("KNeighborsClassifier", "KNeighboursClassifier"),
        "trainer.estimator: cannot import estimator",
    ),
    (
        "regressor-on-classification",
        ("sklearn.neighbors.KNeighborsClassifier", "sklearn.neighbors.KNeighborsRegressor"),
        "trainer.estimator: KNeighborsRegressor does not fit a classification task",
    ),
    (
        "param-the-estimator-does-not-take",
        ("n_neighbors: {type", "n_neighbours: {type"),
        "search_space.n_neighbours: KNeighborsClassifier does not accept param(s)",
    ),
    (
        "typo-in-a-trainer-option",
        ("KNeighborsClassifier}", "KNeighborsClassifier, budget_parm: n_neighbors}"),
        "trainer.budget_parm: unknown option for sklearn",
    ),
    (
        "cnn-on-tabular-data",
        (
            "{kind: sklearn, estimator: sklearn.neighbors.KNeighborsClassifier}",
            "{kind: torch-cnn}",
        ),
        "trainer.kind: torch-cnn needs image-shaped data",
    ),
    (
        "mlp-param-typo",
        (
            "{kind: sklearn, estimator: sklearn.neighbors.KNeighborsClassifier}",
            "{kind: torch-mlp}",
        ),
        "search_space.n_neighbors: torch-mlp does not accept param(s)",
    ),
    ("missing-data-file", ('"sklearn:iris"', "nowhere.csv, target: y"), "data file not found"),
]


@pytest.mark.parametrize(("change", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_validate_and_run_refuse_before_any_trial(
    change: tuple[str, str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = BASE.replace(*change)
    assert text != BASE
    (tmp_path / "spec.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    for command in (["validate", "spec.yaml"], ["run", "spec.yaml"]):
        assert main(command) == 2, command
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (command, err)
    assert not (tmp_path / "kubetune-runs" / "pre" / "study.journal").exists()


def test_a_good_spec_still_validates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "spec.yaml").write_text(BASE)
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "spec.yaml"]) == 0
    assert "valid spec" in capsys.readouterr().out
