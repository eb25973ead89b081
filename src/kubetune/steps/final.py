"""The pipeline's steps around the search, reading and writing files and URIs.

Each function is what one KFP component calls (``kubetune.kfp.components``): it takes the
run's spec and the paths KFP gives its artifacts, and calls the plain steps (retrieve,
search, train_final, evaluate, push) that ``kubetune run`` uses too.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import optuna

from kubetune.core.attrs import WARM_START
from kubetune.core.metrics import TEST, VAL, for_split, unprefixed
from kubetune.core.run_context import RunContext
from kubetune.core.spec import ExperimentSpec
from kubetune.core.storage import open_storage
from kubetune.errors import KubetuneError
from kubetune.report.summary import RunSummary
from kubetune.steps.evaluate import evaluate
from kubetune.steps.pipeline_io import DataRef, load_data, run_context, shared_study_check
from kubetune.steps.pipeline_retune import WarmStart
from kubetune.steps.push import push
from kubetune.steps.retune import Provenance
from kubetune.steps.search import search
from kubetune.steps.search_result import SearchResult, search_result
from kubetune.steps.train import train_final
from kubetune.steps.trial import check_trainer
from kubetune.storage import atomic_write_text

__all__ = [
    "evaluate_model_dir",
    "push_model_dir",
    "retrieve_to",
    "search_to_result",
    "train_to_dir",
]

_TRAINED = "kubetune-trained.json"  # which trainer wrote a model directory, with what


def retrieve_to(spec: ExperimentSpec, directory: str) -> DataRef:
    """Load and check the data once (and the trainer against it), then pin it."""
    data = load_data(spec)
    check_trainer(spec, data)
    ref = DataRef.of(spec, data)
    ref.write(directory)
    return ref


def search_to_result(
    spec: ExperimentSpec,
    ref: DataRef,
    model_repo: str = "",
    warm_start: WarmStart | None = None,
) -> SearchResult:
    """The controller form's search: the whole asynchronous loop in this task, trials on
    the spec's executor (local worker processes inside the task by default). With a
    ``retune:`` section it searches the study of the data version, ``warm_start`` first."""
    from rich.console import Console

    from kubetune.report import RichProgressObserver

    warm_start = warm_start or WarmStart()
    context = run_context(spec, model_repo, ref.fingerprint)
    shared_study_check(context)  # push reads the study in another pod (the run report)
    console = Console(stderr=True)
    observer = RichProgressObserver(
        console=console, metric=spec.objective.metric, direction=spec.direction
    )
    result = search(
        spec,
        observer=observer,
        data_fingerprint=ref.fingerprint,
        context=context,
        warm_start=warm_start.count,
        warm_start_fallback=warm_start.fallback,
    )
    if result.warm_started:
        console.print(f"warm start: the first {result.warm_started} trials ran earlier runs' best")
    return search_result(spec, result.study, result.stop_reason, result.elapsed_s)


def train_to_dir(spec: ExperimentSpec, ref: DataRef, result: SearchResult, directory: str) -> None:
    """Train the best config on train + validation and save it (with its preprocessing)."""
    if result.best_params is None:
        raise KubetuneError(
            f"no trial completed ({result.failed} failed, {result.pruned} pruned;"
            f" {result.stop_reason}): nothing to train"
        )
    if spec.trainer is None:  # checked by the caller: a search spec always has one
        raise ValueError("the final training needs a trainer section")
    data = load_data(spec, ref)
    model = train_final(spec, data, result.best_params, result.budget)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out)
    if data.encoder is not None:
        data.encoder.save(out)
    trained = {"trainer": spec.trainer.kind, "params": result.best_params, "budget": result.budget}
    (out / _TRAINED).write_text(json.dumps(trained, indent=2, sort_keys=True))


def _load_trained(spec: ExperimentSpec, directory: str) -> Any:
    from kubetune.inference import load_model_dir

    info = json.loads((Path(directory) / _TRAINED).read_text())
    options = spec.trainer.options if spec.trainer is not None else {}
    return load_model_dir(directory, trainer=info["trainer"], options=options).model


def evaluate_model_dir(spec: ExperimentSpec, ref: DataRef, directory: str) -> dict[str, float]:
    """Every ``test_`` metric of the trained model on the held-out test split."""
    return evaluate(_load_trained(spec, directory), load_data(spec, ref))


def push_model_dir(
    spec: ExperimentSpec,
    ref: DataRef,
    directory: str,
    result: SearchResult,
    test_metrics: dict[str, float],
    *,
    model_repo: str = "",
    report_path: str | None = None,
    extra: dict[str, Any] | None = None,
    provenance: Provenance | None = None,
) -> RunSummary:
    """Store the model as a new version (the champion gate moves ``production``), and write
    the run summary and HTML report next to the study and to ``report_path``. The
    manifest's ``extra.provenance`` says which run, schedule and data produced it."""
    started = time.monotonic()
    context = run_context(spec, model_repo, ref.fingerprint)
    data = load_data(spec, ref)
    study = optuna.load_study(
        study_name=context.study_name, storage=open_storage(context.study_storage)
    )
    warm_started = sum(WARM_START in t.user_attrs for t in study.get_trials(deepcopy=False))
    record = (provenance or Provenance.resolve()).record(
        spec, data, study=context.study_name, warm_started=warm_started
    )
    gate_metric = for_split(spec.objective.metric, "test")
    pushed = push(
        spec,
        _load_trained(spec, directory),
        repo_uri=context.model_repo,
        base_dir=context.base_dir,
        params=result.best_params or {},
        metrics={**result.validation_metrics, **test_metrics},
        data_fingerprint=data.fingerprint,
        gate_metric=gate_metric,
        data=data,
        extra={
            "budget": result.budget,
            "best_trial": result.best_trial,
            "strategy": result.strategy,
            "scheduler": result.scheduler,
            "provenance": record,
            **(extra or {}),
        },
    )
    from kubetune.repository import open_repository

    repo = open_repository(context.model_repo, base_dir=context.base_dir)
    summary = RunSummary(
        experiment=spec.name,
        metric=spec.objective.metric,
        direction=spec.direction,
        best_params=result.best_params or {},
        best_value=result.best_value,
        best_trial_number=result.best_trial,
        validation_metrics=unprefixed(result.validation_metrics, VAL),
        test_metrics=unprefixed(test_metrics, TEST),
        completed=result.completed,
        pruned=result.pruned,
        failed=result.failed,
        stop_reason=result.stop_reason,
        stop_kind=result.stop_kind,
        model_uri=repo.version_uri(spec.name, pushed.manifest.version),
        model_version=pushed.manifest.version,
        promoted=pushed.promoted,
        warm_started=warm_started,
        study=context.study_name,
    )
    print(f"model repository: {pushed.gate}", flush=True)
    # the search's wall time plus this task's; task start-up and the other tasks are not in it
    summary.elapsed_s = result.elapsed_s + time.monotonic() - started
    _write_outputs(spec, study, context, summary, report_path)
    return summary


def _write_outputs(
    spec: ExperimentSpec,
    study: optuna.Study,
    context: RunContext,
    summary: RunSummary,
    report_path: str | None,
) -> None:
    """The run summary and report in the run folder (as ``kubetune run`` writes them), and
    the report where KFP wants its ``HTML`` artifact."""
    from kubetune.report import write_html_report

    summary.report_path = str(context.report_path)
    for path in filter(None, [report_path, str(context.report_path)]):
        write_html_report(
            study, Path(path), title=spec.name, metric=spec.objective.metric, summary=summary
        )
    atomic_write_text(context.summary_path, json.dumps(summary.to_dict(), indent=2, sort_keys=True))
