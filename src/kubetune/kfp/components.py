"""kubetune's KFP components (kfp v2 SDK), one per pipeline step.

Each body imports one function of :mod:`kubetune.kfp.tasks` and calls it: the logic lives
in kubetune's steps and is tested as plain Python. Components run in the project image
(``DEFAULT_IMAGE``; nothing is installed at run time) and exchange typed artifacts the KFP
UI shows: the data as ``Dataset`` (a reference pinned by its fingerprint), models as
``Model`` (the pushed one with the repository URI and version in its metadata), scores as
``Metrics`` and the run report as ``HTML``. Outputs have their own names, except
``suggest``'s and ``trial``'s (the ``ParallelFor`` items and the ``Collected`` results):
kfp 2.17's local runner does not find a ``ParallelFor`` over a named output.
``components/<name>/component.yaml`` holds each one compiled (``python -m kubetune.kfp.build``).
"""

# No `from __future__ import annotations`: kfp reads the annotations as types.
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Model, Output

from kubetune.kfp import DEFAULT_IMAGE

__all__ = [
    "COMPONENTS",
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


def _component(fn):  # type: ignore[no-untyped-def]
    # install_kfp_package=False: the image already has kfp (the kfp extra); a component
    # that pip-installs at run time would need network access and drift from the image.
    return dsl.component(fn, base_image=DEFAULT_IMAGE, install_kfp_package=False)


@_component
def retrieve(
    spec: str, data_uri: str, max_trials: int, timeout: str, dataset: Output[Dataset]
) -> NamedTuple("RetrieveOutputs", [("run_spec", str)]):  # type: ignore[valid-type]
    """Resolve the spec (inline YAML or a URI) with the run's overrides, load the data and
    pin it by fingerprint. Returns the resolved spec the other tasks use."""
    from kubetune.kfp.tasks import retrieve as run

    return (run(spec, data_uri, max_trials, timeout, dataset),)


@_component
def retune(
    spec: str, model_repo: str, force: bool, dataset: Input[Dataset], report: Output[Markdown]
) -> NamedTuple(  # type: ignore[valid-type]
    "RetuneOutputs", [("decision", str), ("reason", str), ("warm_start", str)]
):
    """Re-tuning: 'skip' when the data is the production model's (unless force), else 'go'
    with the warm start (earlier runs' best configs) as JSON. A spec without retune: goes."""
    from kubetune.kfp.tasks import retune as run

    return run(spec, model_repo, force, dataset, report)


@_component
def skipped(reason: str, report: Output[Markdown]) -> None:
    """The end of a run that had nothing to do (unchanged data): says why, pushes nothing."""
    from kubetune.kfp.tasks import skipped as run

    run(reason, report)


@_component
def search(
    spec: str,
    model_repo: str,
    warm_start: str,
    dataset: Input[Dataset],
    metrics: Output[Metrics],
) -> NamedTuple("SearchOutputs", [("result", str)]):  # type: ignore[valid-type]
    """The controller form's search: the asynchronous loop in this task. Returns the
    search result (best config, budget, stop reason) as JSON."""
    from kubetune.kfp.tasks import search as run

    return (run(spec, model_repo, dataset, metrics, warm_start),)


@_component
def suggest(
    spec: str, run_id: str, round_index: int, warm_start: str, dataset: Input[Dataset]
) -> list:
    """One round's trial requests: promoted configs, else up to limits.parallel new ones
    (on a new study, the warm start's configs first)."""
    from kubetune.kfp.tasks import suggest as run

    return run(spec, run_id, round_index, dataset, warm_start)


@_component
def trial(
    spec: str,
    data_uri: str,
    max_trials: int,
    timeout: str,
    request: str,
    dataset: Input[Dataset],
) -> str:
    """Train and score one config at its rung's budget; returns the trial result JSON.

    Takes the pipeline's own spec parameters, not retrieve's resolved spec: kfp 2.17's local
    runner hands every task output that enters a ParallelFor the loop item instead."""
    from kubetune.kfp.tasks import trial as run

    return run(spec, data_uri, max_trials, timeout, request, dataset)


@_component
def record(
    spec: str,
    run_id: str,
    round_index: int,
    last_round: bool,
    results: list,
    dataset: Input[Dataset],
    metrics: Output[Metrics],
) -> NamedTuple("RecordOutputs", [("decision", str), ("result", str)]):  # type: ignore[valid-type]
    """Tell the study a round's results, promote a rung's best and decide: 'go' or 'stop'."""
    from kubetune.kfp.tasks import record as run

    return run(spec, run_id, round_index, last_round, results, metrics, dataset)


@_component
def train(spec: str, result: str, dataset: Input[Dataset], model: Output[Model]) -> None:
    """Train the best config on train + validation."""
    from kubetune.kfp.tasks import train as run

    run(spec, result, dataset, model)


@_component
def evaluate(
    spec: str, dataset: Input[Dataset], model: Input[Model], metrics: Output[Metrics]
) -> NamedTuple("EvaluateOutputs", [("test_metrics", str)]):  # type: ignore[valid-type]
    """Score the trained model on the held-out test split; returns the metrics as JSON."""
    from kubetune.kfp.tasks import evaluate as run

    return (run(spec, dataset, model, metrics),)


@_component
def push(
    spec: str,
    model_repo: str,
    result: str,
    test_metrics: str,
    run_id: str,
    run_name: str,
    schedule_time: str,
    dataset: Input[Dataset],
    model: Input[Model],
    pushed: Output[Model],
    report: Output[HTML],
) -> NamedTuple("PushOutputs", [("summary", str)]):  # type: ignore[valid-type]
    """Store the model as a new repository version (the champion gate moves production)
    and write the run report. The KFP run id, name and schedule time go into the
    manifest's provenance. Returns the run summary as JSON."""
    from kubetune.kfp.tasks import push as run

    return (
        run(
            spec,
            model_repo,
            result,
            test_metrics,
            dataset,
            model,
            pushed,
            report,
            run_id,
            run_name,
            schedule_time,
        ),
    )


#: Folder name under components/ -> component.
COMPONENTS = {
    "retrieve": retrieve,
    "retune": retune,
    "search": search,
    "train": train,
    "evaluate": evaluate,
    "push": push,
    "skipped": skipped,
    "suggest": suggest,
    "trial": trial,
    "record": record,
}
