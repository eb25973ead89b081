"""Step: search the space with the spec's trainer on the spec's executor."""

from __future__ import annotations

from kubetune.core.events import LoopObserver
from kubetune.core.run_context import RunContext
from kubetune.core.search import TuneResult, run_search
from kubetune.core.spec import ExperimentSpec
from kubetune.executors import create_executor
from kubetune.steps.trial import BuiltinTrial, objective_key


def normalize_objective(spec: ExperimentSpec) -> ExperimentSpec:
    """Spell the objective as the trial reports it (``accuracy`` -> ``val_accuracy``)."""
    key = objective_key(spec)
    if key == spec.objective.metric:
        return spec
    return spec.updated("objective", {"metric": key})


def search(
    spec: ExperimentSpec,
    *,
    observer: LoopObserver | None = None,
    data_fingerprint: str | None = None,
    accept_changed_study: bool = False,
    context: RunContext | None = None,
) -> TuneResult:
    """Run the search; the study and trial files go where ``context`` says (default: the
    spec's run folder)."""
    spec = normalize_objective(spec)
    context = context or RunContext.from_spec(spec)
    trials_dir = context.trials_dir
    with create_executor(
        spec, trial_fn=BuiltinTrial.from_spec(spec), work_dir=trials_dir
    ) as executor:
        return run_search(
            spec,
            executor,
            observer=observer,
            output_dir=str(trials_dir),
            data_fingerprint=data_fingerprint,
            accept_changed_study=accept_changed_study,
            context=context,
        )
