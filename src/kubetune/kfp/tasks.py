"""The body of every kubetune KFP component: turn KFP inputs into a step call.

A component (``kubetune.kfp.components``) only imports one function from here and calls
it with its parameters and artifacts. These functions take artifacts by duck type (an
object with ``.path`` and ``.metadata``, plus ``.log_metric`` for ``Metrics``), so they
run, and are tested, without kfp. A user mistake (bad spec, missing data, no completed
trial) ends the task with one ``error:`` line and exit code 2, not a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from kubetune.errors import KubetuneError

__all__ = [
    "evaluate",
    "push",
    "record",
    "retrieve",
    "retune",
    "search",
    "skipped",
    "suggest",
    "train",
    "trial",
]

F = TypeVar("F", bound=Callable[..., Any])


class Artifact(Protocol):
    path: str
    metadata: dict[str, Any]


def _user_errors(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KubetuneError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None

    return wrapper  # type: ignore[return-value]


def _spec(spec: str) -> Any:
    from kubetune.steps.pipeline_io import resolve_spec

    return resolve_spec(spec)


def _ref(dataset: Artifact) -> Any:
    from kubetune.steps.pipeline_io import DataRef

    return DataRef.read(dataset.path)


def _log_result(metrics: Artifact, result: Any) -> None:
    if result.best_value is not None:
        metrics.log_metric("best_value", result.best_value)  # type: ignore[attr-defined]
    for name in ("completed", "pruned", "failed"):
        metrics.log_metric(name, getattr(result, name))  # type: ignore[attr-defined]


@_user_errors
def retrieve(spec: str, data_uri: str, max_trials: int, timeout: str, dataset: Artifact) -> str:
    """Resolve the run's spec (overrides applied), load and pin its data. Returns the spec
    every later task uses, as JSON, without the study storage (it may hold a password)."""
    from kubetune.steps.final import retrieve_to
    from kubetune.steps.pipeline_io import PipelineOverrides, portable_spec, resolve_spec

    overrides = PipelineOverrides(data_uri=data_uri, max_trials=max_trials, timeout=timeout)
    resolved = resolve_spec(spec, overrides, environ={})
    ref = retrieve_to(resolved, dataset.path)
    dataset.metadata.update(ref.metadata())
    return portable_spec(resolved)


@_user_errors
def retune(
    spec: str, model_repo: str, force: bool, dataset: Artifact, report: Artifact
) -> tuple[str, str, str]:
    """'go' or 'skip' (the data is the production model's), why, and the warm start as
    JSON; the reason goes to the log and to ``report`` (Markdown)."""
    from kubetune.steps.pipeline_retune import decide

    resolved, ref = _spec(spec), _ref(dataset)
    decision = decide(resolved, ref, model_repo, force=force)
    print(f"{resolved.name}: {decision.reason}", file=sys.stderr, flush=True)
    Path(report.path).parent.mkdir(parents=True, exist_ok=True)
    Path(report.path).write_text(decision.markdown(resolved, ref))
    report.metadata.update({"decision": decision.decision, "study": decision.study})
    return decision.decision, decision.reason, decision.warm_start.to_json()


def skipped(reason: str, report: Artifact) -> None:
    """What a skipped run shows last in the KFP UI: why it pushed nothing."""
    print(f"nothing to do: {reason}", file=sys.stderr, flush=True)
    Path(report.path).parent.mkdir(parents=True, exist_ok=True)
    Path(report.path).write_text(f"# Re-tuning skipped\n\n{reason}\n")


@_user_errors
def search(
    spec: str, model_repo: str, dataset: Artifact, metrics: Artifact, warm_start: str = ""
) -> str:
    from kubetune.steps.final import search_to_result
    from kubetune.steps.pipeline_retune import WarmStart

    warm = WarmStart.from_json(warm_start)
    result = search_to_result(_spec(spec), _ref(dataset), model_repo, warm)
    _log_result(metrics, result)
    return str(result.to_json())


@_user_errors
def suggest(
    spec: str, run_id: str, round_index: int, dataset: Artifact, warm_start: str = ""
) -> list[str]:
    from kubetune.steps.pipeline_retune import WarmStart
    from kubetune.steps.rounds import suggest_round

    return suggest_round(
        _spec(spec),
        run_id=run_id,
        round_index=round_index,
        data=_ref(dataset),
        warm_start=WarmStart.from_json(warm_start),
    )


@_user_errors
def trial(
    spec: str, data_uri: str, max_trials: int, timeout: str, request: str, dataset: Artifact
) -> str:
    from kubetune.steps.pipeline_io import PipelineOverrides, resolve_spec
    from kubetune.steps.rounds import run_round_trial

    overrides = PipelineOverrides(data_uri=data_uri, max_trials=max_trials, timeout=timeout)
    return run_round_trial(resolve_spec(spec, overrides), request, _ref(dataset))


@_user_errors
def record(
    spec: str,
    run_id: str,
    round_index: int,
    last_round: bool,
    results: list[str],
    metrics: Artifact,
    dataset: Artifact | None = None,
) -> tuple[str, str]:
    from kubetune.steps.rounds import record_round

    decision = record_round(
        _spec(spec),
        run_id=run_id,
        round_index=round_index,
        results=list(results),
        last_round=last_round,
        data=_ref(dataset) if dataset is not None else None,
    )
    _log_result(metrics, decision.result)
    if not decision.go_on:
        print(f"search stopped: {decision.result.stop_reason}", file=sys.stderr, flush=True)
    return decision.decision, decision.result.to_json()


@_user_errors
def train(spec: str, result: str, dataset: Artifact, model: Artifact) -> None:
    from kubetune.steps.final import train_to_dir
    from kubetune.steps.search_result import SearchResult

    parsed = SearchResult.from_json(result)
    train_to_dir(_spec(spec), _ref(dataset), parsed, model.path)
    model.metadata.update({"params": json.dumps(parsed.best_params), "budget": parsed.budget})


@_user_errors
def evaluate(spec: str, dataset: Artifact, model: Artifact, metrics: Artifact) -> str:
    from kubetune.steps.final import evaluate_model_dir

    scores = evaluate_model_dir(_spec(spec), _ref(dataset), model.path)
    for name, value in sorted(scores.items()):
        metrics.log_metric(name, value)  # type: ignore[attr-defined]
    return json.dumps(scores, sort_keys=True)


@_user_errors
def push(
    spec: str,
    model_repo: str,
    result: str,
    test_metrics: str,
    dataset: Artifact,
    model: Artifact,
    pushed: Artifact,
    report: Artifact,
    run_id: str = "",
    run_name: str = "",
    schedule_time: str = "",
) -> str:
    """Push to the model repository; ``pushed`` carries the version's URI and number. The
    KFP run id, name and schedule time go into the manifest's provenance."""
    from kubetune.steps.final import push_model_dir
    from kubetune.steps.pipeline_retune import kfp_provenance
    from kubetune.steps.search_result import SearchResult

    Path(report.path).parent.mkdir(parents=True, exist_ok=True)
    summary = push_model_dir(
        _spec(spec),
        _ref(dataset),
        model.path,
        SearchResult.from_json(result),
        json.loads(test_metrics),
        model_repo=model_repo,
        report_path=report.path,
        provenance=kfp_provenance(run_id, run_name, schedule_time),
    )
    Path(pushed.path).parent.mkdir(parents=True, exist_ok=True)
    Path(pushed.path).write_text(json.dumps(summary.to_dict(), indent=2, sort_keys=True))
    pushed.metadata.update(
        {
            "uri": summary.model_uri,
            "version": summary.model_version,
            "promoted": bool(summary.promoted),
            "stop_kind": summary.stop_kind,
        }
    )
    return json.dumps(summary.to_dict(), sort_keys=True)
