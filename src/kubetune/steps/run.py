"""The main job end to end: retrieve -> search -> final training -> evaluation -> push.

Each step is a plain function; this module only sequences them and writes what a person
reads afterwards (the summary JSON and the HTML report next to the study).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from rich.console import Console

from kubetune.core.attrs import METRICS
from kubetune.core.spec import ExperimentSpec
from kubetune.core.stop_reason import StopKind
from kubetune.report import RichProgressObserver, RunSummary, write_html_report
from kubetune.repository import open_repository
from kubetune.steps.evaluate import evaluate
from kubetune.steps.push import push
from kubetune.steps.retrieve import retrieve
from kubetune.steps.search import normalize_objective, search
from kubetune.steps.train import best_budget, train_final
from kubetune.steps.trial import check_trainer

DEFAULT_MODEL_REPO = "model-repo"


def run_dir(spec: ExperimentSpec) -> Path:
    return spec.output_path(spec.runs_dir) / spec.name


def run_experiment(
    spec: ExperimentSpec,
    *,
    model_repo: str | None = None,
    console: Console | None = None,
) -> RunSummary:
    console = console or Console(stderr=True)
    spec = normalize_objective(spec)
    started = time.monotonic()
    out_dir = run_dir(spec)
    out_dir.mkdir(parents=True, exist_ok=True)

    data = retrieve(spec)  # fail fast on bad data, before any worker starts
    check_trainer(spec, data)  # ... and on a trainer or objective no trial could use
    repo_uri = model_repo or spec.model_repo or DEFAULT_MODEL_REPO
    open_repository(repo_uri, base_dir=Path.cwd())  # ... and on a repository we cannot use
    console.print(
        f"[bold]{spec.name}[/]: {data.name} ({data.task}, {len(data.X_train)} train /"
        f" {len(data.X_val)} validation / {len(data.X_test)} test rows,"
        f" {data.n_features} features)"
    )
    observer = RichProgressObserver(
        console=console, metric=spec.objective.metric, direction=spec.direction
    )
    result = search(spec, observer=observer)
    console.print(f"strategy: {result.strategy}, scheduler: {result.scheduler}")

    summary = RunSummary(
        experiment=spec.name,
        metric=spec.objective.metric,
        direction=spec.direction,
        stop_reason=result.stop_reason.message,
        stop_kind=result.stop_reason.kind.value,
    )
    trials = result.study.get_trials(deepcopy=False)
    summary.completed = sum(t.state.name == "COMPLETE" for t in trials)
    summary.pruned = sum(t.state.name == "PRUNED" for t in trials)
    summary.failed = sum(t.state.name == "FAIL" for t in trials)

    interrupted = result.stop_reason.kind is StopKind.INTERRUPTED
    if interrupted:
        console.print(
            f"[yellow]interrupted[/]: the study is saved in {out_dir}; run the same command"
            " again to resume (trials that were running run first)"
        )
    if result.best_trial is not None:
        best = result.study.trials[result.best_trial]
        summary.best_params = result.best_params
        summary.best_value = result.best_value
        summary.best_trial_number = result.best_trial
        val_metrics = dict(best.user_attrs.get(METRICS, {}))
        summary.validation_metrics = _unprefixed(val_metrics, "val_")

    if result.best_trial is not None and not interrupted:
        budget = best_budget(spec, best)
        with console.status("training the final model on train + validation"):
            model = train_final(spec, data, result.best_params, budget)
        test_metrics = evaluate(model, data)
        summary.test_metrics = _unprefixed(test_metrics, "test_")
        gate_metric = "test_" + spec.objective.metric.removeprefix("val_")
        pushed = push(
            spec,
            model,
            repo_uri=repo_uri,
            params=result.best_params,
            metrics={**val_metrics, **test_metrics},
            data_fingerprint=data.fingerprint,
            gate_metric=gate_metric,
            data=data,
            extra={
                "budget": budget,
                "best_trial": result.best_trial,
                "strategy": result.strategy,
                "scheduler": result.scheduler,
            },
        )
        summary.model_uri = f"{repo_uri}/{spec.name}/versions/{pushed.manifest.version:06d}"
        summary.model_version = pushed.manifest.version
        console.print(f"model repository: {pushed.gate}")
    elif not interrupted:
        console.print("[red]no trial completed: nothing to train, evaluate or push[/]")

    summary.elapsed_s = time.monotonic() - started
    summary.report_path = str(out_dir / "report.html")  # known before writing: shown inside it
    write_html_report(
        result.study,
        out_dir / "report.html",
        title=spec.name,
        metric=spec.objective.metric,
        summary=summary,
    )
    _write_json(out_dir / "summary.json", summary.to_dict())
    return summary


def _unprefixed(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    return {k.removeprefix(prefix): v for k, v in metrics.items()}


def _write_json(path: Path, data: object) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)
