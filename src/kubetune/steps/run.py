"""The main job end to end: retrieve -> search -> final training -> evaluation -> push.

Each step is a plain function; this module only sequences them and writes what a person
reads afterwards (the summary JSON and the HTML report next to the study).
"""

from __future__ import annotations

import json
import time

from rich.console import Console

from kubetune.core.attrs import METRICS, RETRIED
from kubetune.core.metrics import TEST, VAL, for_split, unprefixed
from kubetune.core.run_context import RunContext
from kubetune.core.search import TuneResult
from kubetune.core.spec import ExperimentSpec
from kubetune.core.stop_reason import StopKind
from kubetune.report import RichProgressObserver, RunSummary, write_html_report
from kubetune.repository import open_repository
from kubetune.steps.evaluate import evaluate
from kubetune.steps.push import push
from kubetune.steps.retrieve import retrieve
from kubetune.steps.retune import Provenance, plan_retune
from kubetune.steps.search import DARTS, normalize_objective, search
from kubetune.steps.train import best_budget, pbt_schedule, train_final
from kubetune.steps.trial import check_trainer
from kubetune.storage import atomic_write_text

#: ``stop_kind`` of a re-tuning run that stopped early: its data is the champion's.
DATA_UNCHANGED = "data_unchanged"


def run_experiment(
    spec: ExperimentSpec,
    *,
    model_repo: str | None = None,
    storage: str | None = None,
    console: Console | None = None,
    accept_changed_study: bool = False,
    context: RunContext | None = None,
    artifacts: str | None = None,
    force: bool = False,
    provenance: Provenance | None = None,
) -> RunSummary:
    """Run the whole job. Where things go comes from ``context``, else from the spec with
    ``model_repo``/``storage``/``artifacts`` (explicit choices, e.g. CLI flags) taking
    precedence.

    With a ``retune:`` section the run re-tunes (see :mod:`kubetune.steps.retune`): it stops
    early on unchanged data unless ``force``, and warm-starts a study of its data version.
    ``provenance`` (default: from the environment) is recorded in the pushed manifest."""
    console = console or Console(stderr=True)
    spec = normalize_objective(spec)
    context = context or RunContext.from_spec(
        spec, model_repo=model_repo, storage=storage, artifacts=artifacts
    )
    started = time.monotonic()
    out_dir = context.run_dir
    out_dir.mkdir(parents=True, exist_ok=True)

    data = retrieve(spec)  # fail fast on bad data, before any worker starts
    check_trainer(spec, data)  # ... and on a trainer or objective no trial could use
    repo_uri = context.model_repo
    repo = open_repository(repo_uri, base_dir=context.base_dir)  # ... and on an unusable one
    provenance = provenance or Provenance.resolve()
    warm_start, fallback = 0, []
    if spec.retune is not None:
        plan = plan_retune(spec, data, repo, context, force=force)
        if plan.skip is not None:
            console.print(f"[bold]{spec.name}[/]: {plan.skip}")
            return write_skipped_summary(spec, plan.skip, context, started)
        context, warm_start, fallback = plan.context, plan.warm_start, plan.fallback
    console.print(
        f"[bold]{spec.name}[/]: {data.name} ({data.task}, {len(data.X_train)} train /"
        f" {len(data.X_val)} validation / {len(data.X_test)} test rows,"
        f" {data.n_features} features)"
    )
    observer = RichProgressObserver(
        console=console,
        metric=spec.objective.metric,
        direction=spec.direction,
        details_at=str(context.report_path),
    )
    result = search(
        spec,
        observer=observer,
        data_fingerprint=data.fingerprint,
        accept_changed_study=accept_changed_study,
        context=context,
        warm_start=warm_start,
        warm_start_fallback=fallback,
    )
    console.print(f"strategy: {result.strategy}, scheduler: {result.scheduler}")
    if result.warm_started:
        console.print(
            f"warm start: the first {result.warm_started} trials ran the best configs of"
            " earlier runs"
        )
    darts = result.study.user_attrs.get(DARTS)
    if darts and darts.get("resumed_at"):
        console.print(
            f"darts: the supernet search resumed at epoch {darts['resumed_at']} of"
            f" {darts['epochs']} (a checkpoint of an interrupted run)"
        )
    if darts:  # what the supernet learned: the softmax weight of every choice per layer
        for name, layers in darts["weights"].items():
            shown = "; ".join(
                ", ".join(f"{c} {w:.2f}" for c, w in layer.items()) for layer in layers
            )
            console.print(f"darts {name}: {shown} (search {darts['search_seconds']:.1f}s)")

    summary = RunSummary(
        experiment=spec.name,
        metric=spec.objective.metric,
        direction=spec.direction,
        stop_reason=result.stop_reason.message,
        stop_kind=result.stop_reason.kind.value,
        warm_started=result.warm_started,
        study=context.study_name,
    )
    trials = result.study.get_trials(deepcopy=False)
    summary.completed = sum(t.state.name == "COMPLETE" for t in trials)
    summary.pruned = sum(t.state.name == "PRUNED" for t in trials)
    failed = [t for t in trials if t.state.name == "FAIL"]
    # A failed attempt whose config was queued again is not a failed trial: its rerun is.
    summary.requeued = sum(bool(t.user_attrs.get(RETRIED)) for t in failed)
    summary.failed = len(failed) - summary.requeued

    interrupted = result.stop_reason.kind is StopKind.INTERRUPTED
    if interrupted:
        console.print(
            f"[yellow]interrupted[/]: the study is saved in {out_dir}; run the same command"
            " again to resume (trials that were running run first)"
        )
    best = result.best_trial
    if best is not None:
        summary.best_params = result.best_params
        summary.best_value = result.best_value
        summary.best_trial_number = best.number
        val_metrics = dict(best.user_attrs.get(METRICS, {}))
        summary.validation_metrics = unprefixed(val_metrics, VAL)

    step = "final training"
    try:
        if best is not None and not interrupted:
            budget = best_budget(spec, best)
            with console.status("training the final model on train + validation"):
                schedule = (
                    pbt_schedule(spec, result.study, best) if result.strategy == "pbt" else None
                )
                model = train_final(spec, data, result.best_params, budget, schedule=schedule)
            step = "evaluation"
            test_metrics = evaluate(model, data)
            summary.test_metrics = unprefixed(test_metrics, TEST)
            gate_metric = for_split(spec.objective.metric, "test")
            step = "push"
            pushed = push(
                spec,
                model,
                repo_uri=repo_uri,
                base_dir=context.base_dir,
                params=result.best_params,
                metrics={**val_metrics, **test_metrics},
                data_fingerprint=data.fingerprint,
                gate_metric=gate_metric,
                data=data,
                extra={
                    "budget": budget,
                    "best_trial": best.number,
                    "strategy": result.strategy,
                    "scheduler": result.scheduler,
                    "provenance": provenance.record(
                        spec, data, study=context.study_name, warm_started=result.warm_started
                    ),
                },
            )
            summary.model_uri = repo.version_uri(spec.name, pushed.manifest.version)
            summary.model_version = pushed.manifest.version
            summary.promoted = pushed.promoted
            console.print(f"model repository: {pushed.gate}")
        elif not interrupted:
            console.print("[red]no trial completed: nothing to train, evaluate or push[/]")
    except Exception as exc:
        # The search's results are worth keeping whatever happens after it: the summary
        # and the report are written below, naming the step that failed, then it raises.
        summary.failed_step = step
        summary.error = f"{type(exc).__name__}: {exc}"[:2000]
        console.print(
            f"[red]{step} failed[/]; the search's results are kept in {context.summary_path}"
            f" and {context.report_path}"
        )
        raise
    finally:
        _write_outputs(result, summary, spec, context, started)
    return summary


def write_skipped_summary(
    spec: ExperimentSpec, reason: str, context: RunContext, started: float
) -> RunSummary:
    """The summary of a run that had nothing to do (written where a full run's goes, so a
    pipeline or a script reads it the same way); the last report is left as it was."""
    summary = RunSummary(
        experiment=spec.name,
        metric=spec.objective.metric,
        direction=spec.direction,
        stop_reason=reason,
        stop_kind=DATA_UNCHANGED,
        skipped=reason,
        elapsed_s=time.monotonic() - started,
    )
    atomic_write_text(context.summary_path, json.dumps(summary.to_dict(), indent=2, sort_keys=True))
    return summary


def _write_outputs(
    result: TuneResult,
    summary: RunSummary,
    spec: ExperimentSpec,
    context: RunContext,
    started: float,
) -> None:
    summary.elapsed_s = time.monotonic() - started
    summary.report_path = str(context.report_path)  # known before writing: shown inside it
    write_html_report(
        result.study,
        context.report_path,
        title=spec.name,
        metric=spec.objective.metric,
        summary=summary,
    )
    atomic_write_text(context.summary_path, json.dumps(summary.to_dict(), indent=2, sort_keys=True))
