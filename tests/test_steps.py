"""The main job's steps as plain functions: the built-in trial, objective naming, the final
budget and the champion gate of the push step (against a real local model repository)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from kubetune.core.spec import ExperimentSpec, parse_spec
from kubetune.core.trial import TrialRequest
from kubetune.errors import KubetuneError, SpecError
from kubetune.repository import open_repository
from kubetune.steps.evaluate import evaluate
from kubetune.steps.push import PRODUCTION, push
from kubetune.steps.retrieve import retrieve
from kubetune.steps.search import normalize_objective
from kubetune.steps.train import best_budget, train_final
from kubetune.steps.trial import BuiltinTrial, check_trainer, objective_key, trainer_metric
from kubetune.trainers import TrainedModel


def make_spec(**overrides: Any) -> ExperimentSpec:
    data: dict[str, Any] = {
        "name": "tiny-digits",
        "objective": {"metric": "val_accuracy"},
        "data": {"source": "sklearn:digits"},
        "trainer": {"kind": "torch-mlp"},
        "search_space": {
            "units": {"type": "int", "low": 16, "high": 32},
            "lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
            "n_layers": 1,
            "batch_size": 128,
        },
        "strategy": {"name": "tpe"},
        "fidelity": {"param": "epochs", "min": 1, "max": 3, "scheduler": "none"},
        "limits": {"max_trials": 2, "parallel": 1},
    }
    data.update(overrides)
    return parse_spec(data)


class Recorder:
    def __init__(self) -> None:
        self.reports: list[tuple[int, float]] = []

    def report(self, step: int, value: float) -> None:
        self.reports.append((step, value))


# --------------------------------------------------------------------------- BuiltinTrial


def test_builtin_trial_trains_and_scores_on_validation() -> None:
    trial = BuiltinTrial.from_spec(make_spec())
    recorder = Recorder()
    request = TrialRequest(
        study="tiny-digits",
        number=0,
        seed=1,
        budget=2,
        params={"n_layers": 1, "units": 32, "lr": 1e-2, "batch_size": 128},
    )
    metrics = trial(request, recorder)

    assert set(metrics) == {"val_accuracy", "val_f1", "val_log_loss", "val_roc_auc"}
    assert 0.5 < metrics["val_accuracy"] <= 1.0  # 10 classes: chance is 0.1
    # one report per epoch of the budget, and the last one is the returned objective
    assert [step for step, _ in recorder.reports] == [1, 2]
    assert recorder.reports[-1][1] == pytest.approx(metrics["val_accuracy"])


def test_builtin_trial_ships_the_spec_not_the_data() -> None:
    trial = BuiltinTrial.from_spec(make_spec())
    spec, data, _ = trial.load()
    assert data.X_train.shape[1] == 64
    copy = pickle.loads(pickle.dumps(trial))
    assert copy._cache is None  # workers load the data themselves, once per process
    assert copy.spec_data == trial.spec_data
    assert parse_spec(copy.spec_data).name == spec.name


def test_builtin_trial_rejects_a_metric_that_does_not_fit_the_task() -> None:
    trial = BuiltinTrial.from_spec(make_spec(objective={"metric": "val_rmse"}))
    with pytest.raises(SpecError, match=r"objective\.metric: .*'rmse' does not apply"):
        trial.load()


def test_an_inferred_task_says_so_and_how_to_change_it(tmp_path: Path) -> None:
    # An integer target with few values looks like classes: say that it was a guess.
    rows = "\n".join(f"{i},{i % 7}" for i in range(60))
    (tmp_path / "counts.csv").write_text("x,y\n" + rows + "\n")
    spec = make_spec(
        objective={"metric": "val_rmse"},
        data={"source": str(tmp_path / "counts.csv"), "target": "y"},
    )
    with pytest.raises(SpecError) as info:
        check_trainer(spec, retrieve(spec))
    assert "inferred as classification" in str(info.value)
    assert "set data.task to classification or regression" in str(info.value)
    explicit = make_spec(
        objective={"metric": "val_rmse"},
        data={"source": str(tmp_path / "counts.csv"), "target": "y", "task": "regression"},
    )
    check_trainer(explicit, retrieve(explicit))  # no error once the task is chosen


# --------------------------------------------------------------------------- objective names


@pytest.mark.parametrize(
    ("metric", "expected"),
    [("accuracy", "val_accuracy"), ("val_accuracy", "val_accuracy"), ("roc_auc", "val_roc_auc")],
)
def test_objective_is_spelled_as_the_trial_reports_it(metric: str, expected: str) -> None:
    spec = make_spec(objective={"metric": metric})
    normalized = normalize_objective(spec)
    assert normalized.objective.metric == expected
    assert objective_key(spec) == expected
    assert trainer_metric(spec) == expected.removeprefix("val_")
    assert normalized.direction == "maximize"
    assert normalized.trainer is not None and normalized.trainer.kind == "torch-mlp"


def test_normalize_keeps_an_already_normal_spec() -> None:
    spec = make_spec()
    assert normalize_objective(spec) is spec


@pytest.mark.parametrize("metric", ["test_accuracy", "train_loss"])
def test_test_and_train_metrics_cannot_drive_the_search(metric: str) -> None:
    spec = make_spec(objective={"metric": metric, "direction": "maximize"})
    with pytest.raises(SpecError, match=r"^objective\.metric: .*cannot drive the search"):
        normalize_objective(spec)
    with pytest.raises(SpecError, match=r"objective\.metric"):
        trainer_metric(spec)


def test_unknown_objective_metric_is_a_spec_error() -> None:
    spec = make_spec(objective={"metric": "val_acc", "direction": "maximize"})
    with pytest.raises(SpecError, match=r"objective\.metric: unknown metric 'val_acc'"):
        normalize_objective(spec)


def test_check_trainer_fails_before_any_trial() -> None:
    spec = make_spec(trainer={"kind": "xgboost"})
    with pytest.raises(KubetuneError, match="unknown trainer kind 'xgboost'"):
        check_trainer(spec, retrieve(spec))
    custom = make_spec(trainer={"kind": "custom", "function": "no_such_module_kt:train"})
    with pytest.raises(KubetuneError, match="cannot import custom trainer"):
        check_trainer(custom, retrieve(custom))


# --------------------------------------------------------------------------- best_budget


def _finished_trial(intermediate: dict[int, float]) -> optuna.trial.FrozenTrial:
    return optuna.trial.create_trial(
        state=TrialState.COMPLETE,
        value=0.9,
        params={"lr": 0.01},
        distributions={"lr": FloatDistribution(1e-3, 1e-1, log=True)},
        intermediate_values=intermediate,
    )


def test_best_budget_is_the_last_step_the_best_trial_reported() -> None:
    spec = make_spec(fidelity={"param": "epochs", "min": 1, "max": 27})
    assert best_budget(spec, _finished_trial({1: 0.5, 3: 0.7, 9: 0.9})) == 9


def test_best_budget_falls_back_to_the_fidelity_maximum() -> None:
    spec = make_spec(fidelity={"param": "epochs", "min": 1, "max": 27})
    assert best_budget(spec, _finished_trial({})) == 27
    assert best_budget(spec, None) == 27


def test_best_budget_without_fidelity_leaves_it_to_the_trainer() -> None:
    spec = make_spec(fidelity=None)
    assert best_budget(spec, _finished_trial({1: 0.5, 20: 0.9})) is None


# --------------------------------------------------------------------------- champion gate


class FakeModel(TrainedModel):
    def __init__(self, tag: str) -> None:
        self.tag = tag

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.zeros(len(X), dtype=np.int64)

    def save(self, directory: Path) -> list[Path]:
        path = Path(directory) / "model.json"
        path.write_text(json.dumps({"tag": self.tag}))
        return [path]


def _push(spec: ExperimentSpec, repo: Path, metric: str, value: float, tag: str) -> Any:
    return push(
        spec,
        FakeModel(tag),
        repo_uri=str(repo),
        params={"lr": 0.01},
        metrics={metric: value, "val_" + metric.removeprefix("test_"): value},
        data_fingerprint="f" * 64,
        gate_metric=metric,
        extra={"tag": tag},
    )


def test_champion_gate_keeps_the_better_model_in_production(tmp_path: Path) -> None:
    spec = make_spec()
    repo_dir = tmp_path / "repo"

    first = _push(spec, repo_dir, "test_accuracy", 0.90, "first")
    assert first.promoted and first.manifest.version == 1
    assert "no production model yet" in first.gate

    worse = _push(spec, repo_dir, "test_accuracy", 0.80, "worse")
    assert not worse.promoted and worse.manifest.version == 2
    assert "kept the champion" in worse.gate

    repo = open_repository(repo_dir)
    assert repo.resolve(spec.name, PRODUCTION) == 1
    assert [m.version for m in repo.versions(spec.name)] == [1, 2]  # the worse one is stored
    assert repo.get(spec.name, 2).extra["tag"] == "worse"

    better = _push(spec, repo_dir, "test_accuracy", 0.95, "better")
    assert better.promoted and better.manifest.version == 3
    assert repo.resolve(spec.name, PRODUCTION) == 3
    assert repo.resolve(spec.name, "latest") == 3

    pulled = repo.pull(spec.name, PRODUCTION, tmp_path / "pulled")
    assert pulled.version == 3
    assert json.loads((tmp_path / "pulled" / "model.json").read_text()) == {"tag": "better"}


def test_champion_gate_follows_the_objective_direction(tmp_path: Path) -> None:
    spec = make_spec(data={"source": "sklearn:diabetes"}, objective={"metric": "val_rmse"})
    assert spec.direction == "minimize"
    repo_dir = tmp_path / "repo"
    assert _push(spec, repo_dir, "test_rmse", 50.0, "first").promoted
    assert not _push(spec, repo_dir, "test_rmse", 60.0, "higher rmse").promoted
    assert _push(spec, repo_dir, "test_rmse", 45.0, "lower rmse").promoted
    assert open_repository(repo_dir).resolve(spec.name, PRODUCTION) == 3


def _sklearn_spec(source: str, seed: int) -> ExperimentSpec:
    return make_spec(
        name="gate-rescore",
        data={"source": source},
        trainer={"kind": "sklearn", "estimator": "sklearn.linear_model.LogisticRegression"},
        search_space={"C": {"type": "float", "low": 0.01, "high": 10.0, "log": True}},
        fidelity=None,
        seed=seed,
    )


def _train_and_push(spec: ExperimentSpec, repo_dir: Path, C: float) -> Any:
    data = retrieve(spec)
    model = train_final(spec, data, {"C": C, "max_iter": 2000}, None)
    metrics = evaluate(model, data)
    return push(
        spec,
        model,
        repo_uri=str(repo_dir),
        params={"C": C},
        metrics=metrics,
        data_fingerprint=data.fingerprint,
        gate_metric="test_accuracy",
        data=data,
    )


def test_champion_is_rescored_when_the_data_changed(tmp_path: Path) -> None:
    repo_dir = tmp_path / "repo"
    first = _train_and_push(_sklearn_spec("sklearn:digits", seed=0), repo_dir, C=1.0)
    assert first.promoted
    # Another split seed: another test split and fingerprint, so the stored score of v1
    # is not comparable; the gate pulls v1 and scores it on the new test split.
    second = _train_and_push(_sklearn_spec("sklearn:digits", seed=1), repo_dir, C=0.0001)
    assert "re-scored on this run's test split" in second.gate
    assert not second.promoted, second.gate  # a heavily over-regularized challenger loses
    assert open_repository(repo_dir).resolve("gate-rescore", PRODUCTION) == 1


def test_champion_that_cannot_serve_the_new_data_is_replaced(tmp_path: Path) -> None:
    repo_dir = tmp_path / "repo"
    assert _train_and_push(_sklearn_spec("sklearn:digits", seed=0), repo_dir, C=1.0).promoted
    # iris has 4 features, the digits champion expects 64: it cannot be scored, so it goes.
    second = _train_and_push(_sklearn_spec("sklearn:iris", seed=0), repo_dir, C=1.0)
    assert second.promoted
    assert "cannot be scored on the new data" in second.gate


FAILING_FINAL = """\
import numpy as np


class Majority:
    def predict(self, X):
        return np.zeros(len(X), dtype=np.int64)


def train(params, data, budget, reporter, seed, final):
    if final:
        raise RuntimeError("out of GPU memory in the final training")
    reporter.report(1, params["x"])
    return Majority()
"""


def test_a_failing_final_training_keeps_the_summary_and_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 7.10: an exception after the search lost its summary.json and report.html."""
    from kubetune.core.spec import load_spec
    from kubetune.steps.run import run_experiment

    (tmp_path / "final_trainer.py").write_text(FAILING_FINAL)
    (tmp_path / "spec.yaml").write_text(
        "name: final-fails\n"
        "objective: {metric: val_accuracy}\n"
        'data: {source: "sklearn:iris"}\n'
        'trainer: {kind: custom, function: "final_trainer:train"}\n'
        "search_space: {x: {type: float, low: 0, high: 1}}\n"
        "strategy: {name: random}\n"
        "limits: {max_trials: 2, parallel: 1}\n"
    )
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RuntimeError, match="out of GPU memory"):
        run_experiment(load_spec(tmp_path / "spec.yaml"))
    run_dir = tmp_path / "kubetune-runs" / "final-fails"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["failed_step"] == "final training"
    assert "out of GPU memory" in summary["error"]
    assert summary["completed"] == 2 and summary["best_trial_number"] is not None
    assert summary["model_uri"] is None and summary["promoted"] is None
    assert (run_dir / "report.html").stat().st_size > 0


class _FileModel(TrainedModel):
    def __init__(self, tag: str) -> None:
        self.tag = tag

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.zeros(len(X))

    def save(self, directory: Path) -> list[Path]:
        path = Path(directory) / "weights.bin"
        path.write_text(self.tag)
        return [path]


def test_concurrent_pushes_never_promote_a_worse_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 7.4: the gate was check-then-act; with a pause between the check and the
    write (a re-score takes that long), production moved to worse versions."""
    import random
    import threading
    import time

    import kubetune.steps.push as push_step

    real_gate = push_step.champion_gate

    def slow_gate(*args: Any, **kwargs: Any) -> tuple[bool, str]:
        verdict = real_gate(*args, **kwargs)
        time.sleep(random.uniform(0.0, 0.05))
        return verdict

    monkeypatch.setattr(push_step, "champion_gate", slow_gate)
    spec = make_spec()
    scores = [round(random.Random(seed).uniform(0.5, 1.0), 4) for seed in range(10)]
    errors: list[BaseException] = []

    def run(score: float) -> None:
        try:
            push(spec, _FileModel(str(score)), repo_uri=str(tmp_path / "repo"), params={},
                 metrics={"test_accuracy": score}, data_fingerprint="f",
                 gate_metric="test_accuracy")  # fmt: skip
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in scores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    repo = open_repository(tmp_path / "repo")
    production = repo.get(spec.name, PRODUCTION)
    assert production.metrics["test_accuracy"] == max(scores)
    assert len(repo.versions(spec.name)) == len(scores)  # every version is kept
