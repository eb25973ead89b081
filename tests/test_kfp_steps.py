"""The pipeline's steps as plain Python: what each KFP component body calls.

A KFP artifact is stood in for by ``FakeArtifact`` (a path, metadata and ``log_metric``,
what kfp hands a component); the rounds of the looping pipeline are driven in-process in
the order the compiled pipeline runs them, on a journal study in a temporary folder.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from kubetune.core.spec import ExperimentSpec
from kubetune.errors import SpecError
from kubetune.kfp import tasks
from kubetune.repository import open_repository
from kubetune.steps.pipeline_io import (
    PipelineOverrides,
    portable_spec,
    resolve_spec,
    run_context,
    shared_study_check,
)
from kubetune.steps.rounds import record_round, suggest_round

SPEC = """\
name: iris-rounds
objective: {metric: accuracy}
data: {source: "sklearn:iris"}
trainer:
  kind: sklearn
  estimator: sklearn.linear_model.SGDClassifier  # fast and single-threaded
  budget_param: max_iter
  report_steps: 2
search_space:
  alpha: {type: float, low: 1.0e-5, high: 1.0e-1, log: true}
  loss: log_loss
strategy: {name: random}
fidelity: {param: max_iter, min: 5, max: 15, reduction_factor: 3, scheduler: asha}
limits: {max_trials: 4, parallel: 2}
seed: 3
"""


class FakeArtifact:
    """What kfp hands a component for an artifact (``Metrics`` adds ``log_metric``)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.metadata: dict[str, Any] = {}

    def log_metric(self, name: str, value: float) -> None:
        self.metadata[name] = value


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KUBETUNE_STORAGE", str(tmp_path / "study.journal"))
    return tmp_path


def _study(spec: ExperimentSpec) -> optuna.Study:
    from kubetune.core.storage import open_storage

    return optuna.load_study(
        study_name=spec.name, storage=open_storage(run_context(spec).study_storage)
    )


def _round(
    run_spec: str, dataset: FakeArtifact, index: int, *, last: bool, run_id: str = "run-1"
) -> tuple[str, str, list[dict[str, Any]]]:
    requests = tasks.suggest(run_spec, run_id, index, dataset)
    results = [tasks.trial(run_spec, "", 0, "", request, dataset) for request in requests]
    metrics = FakeArtifact(dataset.path + "-metrics")
    decision, result = tasks.record(run_spec, run_id, index, last, results, metrics)
    return decision, result, [json.loads(r) for r in requests]


@pytest.mark.slow  # about 3 s idle, 11 s on a loaded 2-core machine (the HTML report)
def test_the_looping_rounds_then_train_evaluate_push(workdir: Path) -> None:
    dataset = FakeArtifact(workdir / "dataset")
    run_spec = tasks.retrieve(SPEC, "", 0, "", dataset)
    assert dataset.metadata["source"] == "sklearn:iris" and dataset.metadata["rows_test"] == 30
    assert "study.journal" not in run_spec  # the storage from the environment stays out

    rounds = []
    for index in range(8):
        decision, result, requests = _round(run_spec, dataset, index, last=index == 7)
        rounds.append(requests)
        if decision == "stop":
            break
    # asha, 2 per bracket: 2 configs at 5 iterations, the best 1 again at 15; twice
    assert [[r["budget"] for r in reqs] for reqs in rounds] == [[5, 5], [15], [5, 5], [15]]
    promoted = rounds[1][0]["number"]
    assert promoted in {r["number"] for r in rounds[0]}  # the same trial goes on
    assert decision == "stop"
    parsed = json.loads(result)
    assert parsed["stop_kind"] == "max_trials" and parsed["stop_reason"].startswith("max_trials")
    assert (parsed["completed"], parsed["pruned"], parsed["failed"]) == (2, 2, 0)

    spec = resolve_spec(run_spec)
    study = _study(spec)
    states = {t.number: t.state for t in study.get_trials()}
    assert len(states) == 4 and states[promoted] == TrialState.COMPLETE
    assert max(study.trials[promoted].intermediate_values) == 15

    model = FakeArtifact(workdir / "model")
    tasks.train(run_spec, result, dataset, model)
    evaluation = FakeArtifact(workdir / "metrics")
    test_metrics = tasks.evaluate(run_spec, dataset, model, evaluation)
    assert 0.0 <= evaluation.metadata["test_accuracy"] <= 1.0
    pushed, report = FakeArtifact(workdir / "pushed"), FakeArtifact(workdir / "report.html")
    summary = json.loads(
        tasks.push(
            run_spec, str(workdir / "repo"), result, test_metrics, dataset, model, pushed, report
        )
    )
    assert pushed.metadata["version"] == 1 and pushed.metadata["promoted"] is True
    assert pushed.metadata["uri"] == summary["model_uri"]
    manifest = open_repository(str(workdir / "repo"), base_dir=workdir).get("iris-rounds", 1)
    assert manifest.params == parsed["best_params"] and manifest.extra["budget"] == 15
    assert "<html" in Path(report.path).read_text().lower()


@pytest.mark.reliability  # part of the suite: pytest -m reliability
def test_suggest_and_record_run_twice_give_the_same_answer_and_tell_once(workdir: Path) -> None:
    dataset = FakeArtifact(workdir / "dataset")
    run_spec = tasks.retrieve(SPEC, "", 0, "", dataset)
    spec = resolve_spec(run_spec)
    first = suggest_round(spec, run_id="r", round_index=0)
    assert suggest_round(spec, run_id="r", round_index=0) == first  # a retried suggest
    assert len(_study(spec).trials) == 2  # asked no more trials
    results = [tasks.trial(run_spec, "", 0, "", request, dataset) for request in first]
    decision = record_round(spec, run_id="r", round_index=0, results=results, last_round=False)
    told = [(t.number, t.state, dict(t.intermediate_values)) for t in _study(spec).trials]
    again = record_round(spec, run_id="r", round_index=0, results=results, last_round=False)
    assert again == decision
    assert [(t.number, t.state, dict(t.intermediate_values)) for t in _study(spec).trials] == told

    # Killed after its tells, before it stored the decision: decided again from the results.
    study = _study(spec)
    key = "kubetune:round:r:0"
    info = dict(study.user_attrs[key])
    info.pop("decision")
    study.set_user_attr(key, info)
    redone = record_round(spec, run_id="r", round_index=0, results=results, last_round=False)
    # the same decision (the search's wall time has moved on, of course)
    assert redone.go_on == decision.go_on
    assert replace(redone.result, elapsed_s=0) == replace(decision.result, elapsed_s=0)
    assert [(t.number, t.state, dict(t.intermediate_values)) for t in _study(spec).trials] == told
    assert [t.state for t in _study(spec).trials].count(TrialState.RUNNING) == 1  # promoted


def test_a_reached_target_stops_the_search(workdir: Path) -> None:
    target_spec = SPEC.replace(
        "objective: {metric: accuracy}", "objective: {metric: accuracy, target: 0.1}"
    )
    dataset = FakeArtifact(workdir / "dataset")
    run_spec = tasks.retrieve(target_spec, "", 0, "", dataset)
    decision, result, _ = _round(run_spec, dataset, 0, last=False)
    assert decision == "go"  # the first rung completes no trial: no best to compare yet
    decision, result, _ = _round(run_spec, dataset, 1, last=False)
    assert decision == "stop" and json.loads(result)["stop_kind"] == "target"


def test_the_last_compiled_round_stops_with_its_own_reason(workdir: Path) -> None:
    dataset = FakeArtifact(workdir / "dataset")
    run_spec = tasks.retrieve(SPEC, "", 0, "", dataset)
    decision, result, _ = _round(run_spec, dataset, 0, last=True)
    parsed = json.loads(result)
    assert decision == "stop" and parsed["stop_kind"] == "max_rounds"
    assert "--max-rounds" in parsed["stop_reason"]
    spec = resolve_spec(run_spec)
    assert all(t.state.is_finished() for t in _study(spec).trials)  # no promotion left running
    assert parsed["best_params"] is None  # nothing reached the full budget: nothing to train
    with pytest.raises(SystemExit) as exc:
        tasks.train(run_spec, result, dataset, FakeArtifact(workdir / "model"))
    assert exc.value.code == 2


def test_a_study_with_max_trials_done_refuses_an_empty_round(workdir: Path) -> None:
    spec_text = SPEC.replace("max_trials: 4", "max_trials: 2").replace(
        "scheduler: asha", "scheduler: none"
    )
    dataset = FakeArtifact(workdir / "dataset")
    run_spec = tasks.retrieve(spec_text, "", 0, "", dataset)
    assert _round(run_spec, dataset, 0, last=False)[0] == "stop"
    with pytest.raises(SpecError, match=r"already holds 2 trials .* raise max_trials"):
        suggest_round(resolve_spec(run_spec), run_id="run-2", round_index=0)


def test_a_user_mistake_ends_a_task_with_one_error_line(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        tasks.retrieve(
            SPEC.replace("sklearn:iris", "missing.csv"), "", 0, "", FakeArtifact(workdir)
        )
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing.csv" in err and "Traceback" not in err


def test_spec_parameter_inline_or_uri_with_overrides(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workdir / "spec.yaml").write_text(SPEC)
    from_file = resolve_spec(str(workdir / "spec.yaml"))
    inline = resolve_spec(SPEC)
    assert from_file.model_dump() == inline.model_dump()
    assert inline.objective.metric == "val_accuracy"  # spelled as trials report it
    assert inline.storage == str(workdir / "study.journal")  # from KUBETUNE_STORAGE
    changed = resolve_spec(
        SPEC, PipelineOverrides(data_uri="sklearn:wine", max_trials=7, timeout="5m")
    )
    assert changed.data is not None and changed.data.source == "sklearn:wine"
    assert (changed.limits.max_trials, changed.limits.timeout) == (7, 300)
    with pytest.raises(SpecError, match=r"limits.timeout"):
        resolve_spec(SPEC, PipelineOverrides(timeout="soon"))
    with pytest.raises(SpecError, match=r"spec.yaml: spec file not found"):
        resolve_spec("nowhere/spec.yaml")
    monkeypatch.setenv("KUBETUNE_STORAGE", "postgresql://u:secret@db/kt")
    assert "secret" not in portable_spec(resolve_spec(SPEC, environ={}))


def test_a_study_file_inside_a_pod_is_refused() -> None:
    spec = resolve_spec(SPEC, environ={})
    with pytest.raises(SpecError, match=r"KUBETUNE_STORAGE Secret"):
        shared_study_check(run_context(spec), environ={"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    shared_study_check(run_context(spec), environ={})  # a laptop: a local file is fine


@pytest.mark.parametrize("metric", ["accuracy", "val_accuracy", "f1"])
def test_the_light_objective_spelling_matches_the_search_step(metric: str) -> None:
    """suggest/record tasks spell the objective without importing the trainer stack."""
    from kubetune.steps.search import normalize_objective

    spec = resolve_spec(SPEC.replace("metric: accuracy", f"metric: {metric}"), environ={})
    plain = normalize_objective(
        parse_spec_text(SPEC.replace("metric: accuracy", f"metric: {metric}"))
    )
    assert spec.objective.metric == plain.objective.metric


def test_the_light_budget_matches_the_train_step() -> None:
    from optuna.trial import create_trial

    from kubetune.steps.search_result import _budget
    from kubetune.steps.train import best_budget

    spec = resolve_spec(SPEC, environ={})
    no_fidelity = resolve_spec(SPEC.replace("fidelity:", "#"), environ={})
    reported = create_trial(value=0.9, intermediate_values={5: 0.8, 15: 0.9})
    for s in (spec, no_fidelity):
        for trial in (reported, create_trial(value=0.5), None):
            assert _budget(s, trial) == best_budget(s, trial)


def parse_spec_text(text: str) -> ExperimentSpec:
    import yaml

    from kubetune.core.spec import parse_spec

    return parse_spec(yaml.safe_load(text))
