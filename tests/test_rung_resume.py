"""The looping pipeline's promoted configs go on from their checkpoint.

Driven through the KFP component bodies (``kubetune.kfp.tasks``) in-process, in the order
the compiled pipeline runs them, with ``FakeArtifact`` standing in for what kfp hands a
component. The artifact store is the run's default (a local folder).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import optuna
import pytest

import kubetune
from kubetune.artifacts import TrialArtifacts
from kubetune.core.attrs import RESUME
from kubetune.core.storage import open_storage
from kubetune.core.trial import TrialOutcome
from kubetune.kfp import tasks
from kubetune.steps.pipeline_io import resolve_spec, run_context
from kubetune.steps.retrieve import retrieve
from kubetune.steps.starting_point import RESUMED_FROM_STEP
from kubetune.steps.trial import trainer_metric
from kubetune.storage import open_store
from kubetune.trainers.checkpoints import ArtifactCheckpoints
from kubetune.trainers.torch_mlp import TorchMLPTrainer
from test_kfp_steps import FakeArtifact

TORCH_SPEC = """\
name: iris-resume
objective: {metric: accuracy}
data: {source: "sklearn:iris"}
trainer: {kind: torch-mlp}
search_space:
  n_layers: 1
  units: 16
  # so small that training barely moves the weights: where it starts shows
  lr: {type: float, low: 1.0e-6, high: 1.0e-5, log: true}
  batch_size: 16
strategy: {name: random}
fidelity: {param: epochs, min: 2, max: 6, reduction_factor: 3, scheduler: asha}
limits: {max_trials: 4, parallel: 2}
seed: 1
"""

SKLEARN_SPEC = """\
name: iris-resume-sk
objective: {metric: accuracy}
data: {source: "sklearn:iris"}
trainer:
  kind: sklearn
  estimator: sklearn.linear_model.SGDClassifier
  budget_param: max_iter
search_space:
  alpha: {type: float, low: 1.0e-5, high: 1.0e-1, log: true}
strategy: {name: random}
fidelity: {param: max_iter, min: 5, max: 15, reduction_factor: 3, scheduler: asha}
limits: {max_trials: 4, parallel: 2}
seed: 3
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KUBETUNE_STORAGE", str(tmp_path / "study.journal"))
    return tmp_path


def _round(run_spec: str, dataset: FakeArtifact, index: int) -> tuple[list[Any], list[Any]]:
    requests = tasks.suggest(run_spec, "run-1", index, dataset)
    results = [tasks.trial(run_spec, "", 0, "", request, dataset) for request in requests]
    tasks.record(run_spec, "run-1", index, False, results, FakeArtifact(Path("m")))
    return [json.loads(r) for r in requests], [json.loads(r) for r in results]


@pytest.mark.slow  # about 7 s on a loaded 2-core machine
def test_a_promoted_torch_config_trains_on_from_its_lower_rung_checkpoint(
    workdir: Path,
) -> None:
    dataset = FakeArtifact(workdir / "dataset")
    run_spec = tasks.retrieve(TORCH_SPEC, "", 0, "", dataset)
    spec = resolve_spec(run_spec)
    first, done = _round(run_spec, dataset, 0)
    assert all(r["result"]["status"] == "completed" for r in done), [
        r["result"]["message"] for r in done
    ]
    assert [r["budget"] for r in first] == [2, 2]

    # Replace the promoted config's rung-0 checkpoint with a well-trained model (still
    # marked as 2 epochs): a trial that really starts from the saved weights scores like
    # it from its first epoch on, one that starts from scratch (lr 1e-5) stays near chance.
    promoted = json.loads(tasks.suggest(run_spec, "run-1", 1, dataset)[0])
    assert promoted["budget"] == 6 and promoted["number"] in {r["number"] for r in first}
    data = retrieve(spec)
    strong = TorchMLPTrainer().fit(
        {**promoted["params"], "lr": 0.05},
        data,
        budget=60,
        seed=0,
        reporter=_Quiet(),
        metric=trainer_metric(spec),
    )
    strong_score = float((strong.predict(data.X_val) == data.y_val).mean())
    assert strong_score >= 0.9
    store = open_store(run_context(spec).artifacts)
    ArtifactCheckpoints(TrialArtifacts(store, spec.name, 0)).save(
        promoted["number"], strong, step=2
    )

    results = [tasks.trial(run_spec, "", 0, "", json.dumps(promoted), dataset)]
    tasks.record(run_spec, "run-1", 1, False, results, FakeArtifact(workdir / "m"))
    outcome = TrialOutcome.from_dict(json.loads(results[0])["result"])
    assert [step for step, _ in outcome.curve] == [3, 4, 5, 6]  # 4 epochs, not 6
    assert outcome.curve[0][1] >= strong_score - 0.05  # started from the saved weights
    assert outcome.metrics[RESUMED_FROM_STEP] == 2

    study = optuna.load_study(
        study_name=spec.name, storage=open_storage(run_context(spec).study_storage)
    )
    trial = study.trials[promoted["number"]]
    assert sorted(trial.intermediate_values) == [1, 2, 3, 4, 5, 6]  # one curve over rungs
    assert trial.user_attrs[RESUME] == {"6": {"resumed_from": 2}}
    saved = TrialArtifacts(store, spec.name, promoted["number"]).checkpoint()
    assert saved is not None and saved.step == 6  # ready for a further rung


def test_a_promoted_config_of_a_trainer_that_cannot_continue_says_why(workdir: Path) -> None:
    dataset = FakeArtifact(workdir / "dataset")
    run_spec = tasks.retrieve(SKLEARN_SPEC, "", 0, "", dataset)
    _round(run_spec, dataset, 0)
    second, results = _round(run_spec, dataset, 1)
    assert [r["budget"] for r in second] == [15] and second[0]["rung"] == 1
    assert results[0]["start"] == {
        "from_scratch": "the sklearn trainer cannot continue a saved model"
    }
    spec = resolve_spec(run_spec)
    study = optuna.load_study(
        study_name=spec.name, storage=open_storage(run_context(spec).study_storage)
    )
    assert study.trials[second[0]["number"]].user_attrs[RESUME] == {
        "15": {"from_scratch": "the sklearn trainer cannot continue a saved model"}
    }
    # Nothing kept for a trainer that cannot use it.
    assert not list(open_store(run_context(spec).artifacts).list("studies/"))


class _Quiet:
    def report(self, step: int, value: float) -> None:
        return None


KFP_SPEC = """\
name: iris-kfp
objective: {metric: accuracy}
data: {source: "sklearn:iris"}
trainer: {kind: torch-mlp}
search_space:
  n_layers: 1
  units: 8
  lr: {type: float, low: 1.0e-3, high: 1.0e-1, log: true}
strategy: {name: random}
fidelity: {param: epochs, min: 2, max: 6, reduction_factor: 3, scheduler: asha}
limits: {max_trials: 2, parallel: 2}
seed: 1
"""


@pytest.mark.slow  # every task is a fresh interpreter importing torch: about 1-2 minutes
def test_kfp_local_looping_run_resumes_the_promoted_config(
    kfp_workdir: Path,
) -> None:
    """The compiled looping pipeline through kfp.local (real task subprocesses, no cluster):
    the rung-1 trial task finds the rung-0 checkpoint another task saved."""
    from test_kfp_local import _run, _study_trials

    summary = _run(kfp_workdir, KFP_SPEC)
    assert summary["completed"] == 1 and summary["failed"] == 0
    promoted = [t for t in _study_trials(kfp_workdir) if t.state.name == "COMPLETE"]
    assert len(promoted) == 1
    assert promoted[0].user_attrs[RESUME] == {"6": {"resumed_from": 2}}
    assert sorted(promoted[0].intermediate_values) == [1, 2, 3, 4, 5, 6]


@pytest.fixture
def kfp_workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """As ``test_kfp_local``: task subprocesses run in other folders and must import this
    checkout's kubetune."""
    monkeypatch.chdir(tmp_path)
    src = str(Path(kubetune.__file__).resolve().parents[1])
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))
    )
    monkeypatch.delenv("KUBETUNE_ARTIFACTS", raising=False)
    return tmp_path
