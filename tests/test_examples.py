"""The specs under ``examples/`` stay valid, documented and runnable."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetune.cli.main import main
from kubetune.data import load_dataset
from kubetune.errors import InvalidConfigError
from kubetune.repository import open_repository
from kubetune.trainers import get_trainer

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SPECS = sorted(EXAMPLES.glob("*.yaml"))


def test_the_examples_are_there() -> None:
    names = {p.name for p in SPECS}
    assert {
        "digits-mlp.yaml",
        "breast-cancer-hgb.yaml",
        "diabetes-regression.yaml",
        "digits-cnn.yaml",
        "custom-trainer.yaml",
    } <= names


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_example_validates(
    spec: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # validate imports a custom trainer from the spec's folder, as run does
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert main(["validate", str(spec)]) == 0
    out = capsys.readouterr().out
    name = yaml.safe_load(spec.read_text())["name"]
    assert name == spec.stem  # outputs land in kubetune-runs/<file name>
    assert f"valid spec for experiment '{name}'" in out
    assert "strategy: " in out and "stops on: " in out


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_example_is_documented(spec: Path) -> None:
    readme = (EXAMPLES / "README.md").read_text()
    assert f"`{spec.name}`" in readme
    assert f"kubetune run examples/{spec.name}" in readme


# --------------------------------------------------------------------------- custom trainer


@pytest.fixture
def custom_trainer_on_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """What ``PYTHONPATH=examples`` does, for this process and the workers it starts."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setenv("PYTHONPATH", str(EXAMPLES))
    monkeypatch.delitem(sys.modules, "custom_trainer", raising=False)
    yield
    sys.modules.pop("custom_trainer", None)


class Recorder:
    def __init__(self) -> None:
        self.reports: list[tuple[int, float]] = []

    def report(self, step: int, value: float) -> None:
        self.reports.append((step, value))


def test_custom_trainer_example_follows_the_contract(
    custom_trainer_on_path: None, tmp_path: Path
) -> None:
    spec = yaml.safe_load((EXAMPLES / "custom-trainer.yaml").read_text())
    trainer = get_trainer("custom", {"function": spec["trainer"]["function"]})
    data = load_dataset(spec["data"]["source"])
    recorder = Recorder()
    params: dict[str, Any] = {"lr": 0.3, "l2": 1e-4, "batch_size": 32}
    model = trainer.fit(params, data, budget=3, seed=0, reporter=recorder, metric="log_loss")
    assert [step for step, _ in recorder.reports] == [1, 2, 3]
    assert recorder.reports[-1][1] < recorder.reports[0][1]  # log loss goes down
    assert (model.predict(data.X_val) == data.y_val).mean() > 0.8

    files = model.save(tmp_path / "model")
    assert sorted(p.name for p in files) == ["softmax.json", "softmax.npz"]
    loaded = trainer.load(tmp_path / "model")
    assert (loaded.predict(data.X_test) == model.predict(data.X_test)).all()

    with pytest.raises(InvalidConfigError, match="unknown param"):
        trainer.fit({"momentum": 0.9}, data, budget=1, seed=0, reporter=recorder, metric="f1")


# --------------------------------------------------------------------------- real runs


def _run(
    spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trials: int
) -> dict[str, Any]:
    monkeypatch.chdir(tmp_path)
    code = main(["run", str(spec), "--max-trials", str(trials), "--model-repo", "repo"])
    assert code == 0
    name = spec.stem
    summary: dict[str, Any] = json.loads(
        (tmp_path / "kubetune-runs" / name / "summary.json").read_text()
    )
    assert summary["completed"] + summary["pruned"] + summary["failed"] == trials
    assert summary["model_version"] == 1
    return summary


@pytest.mark.slow
def test_breast_cancer_hgb_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = _run(EXAMPLES / "breast-cancer-hgb.yaml", tmp_path, monkeypatch, trials=3)
    assert summary["metric"] == "val_roc_auc"
    assert summary["test_metrics"]["roc_auc"] > 0.9
    manifest = open_repository(tmp_path / "repo").get("breast-cancer-hgb", "production")
    assert {f.path for f in manifest.files} == {"model.skops", "model.json", "preprocessing.json"}
    assert manifest.extra["budget"] == 200  # max_iter of the best (completed) trial
    assert set(manifest.params) == {
        "learning_rate",
        "max_leaf_nodes",
        "min_samples_leaf",
        "l2_regularization",
    }


@pytest.mark.slow
def test_custom_trainer_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No PYTHONPATH: the module is found next to the spec file, by the controller and workers.
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "custom_trainer", raising=False)
    assert str(EXAMPLES) not in sys.path
    summary = _run(EXAMPLES / "custom-trainer.yaml", tmp_path, monkeypatch, trials=3)
    assert summary["metric"] == "val_log_loss" and summary["direction"] == "minimize"
    assert summary["test_metrics"]["accuracy"] > 0.8
    manifest = open_repository(tmp_path / "repo").get("custom-trainer", "production")
    assert {f.path for f in manifest.files} == {"softmax.npz", "softmax.json", "preprocessing.json"}


@pytest.mark.slow
def test_predict_raw_rows_example_runs(tmp_path: Path) -> None:
    """The README's example of predicting raw rows with a stored model, as a user runs it."""
    import subprocess

    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "predict_raw_rows.py"), str(tmp_path / "work")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stdout.splitlines()
    rows = [line.split() for line in lines[lines.index("  predicted actual") + 1 :][:5]]
    assert [row[1] for row in rows] == [row[2] for row in rows]  # the original labels back
    assert (tmp_path / "work" / "model-repo" / "plants" / "aliases" / "production.json").exists()
