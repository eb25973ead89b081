"""Step: search the space with the spec's trainer on the local executor."""

from __future__ import annotations

from kubetune.api import TuneResult, run_search
from kubetune.core.events import LoopObserver
from kubetune.core.spec import ExperimentSpec
from kubetune.steps.trial import BuiltinTrial, objective_key


def normalize_objective(spec: ExperimentSpec) -> ExperimentSpec:
    """Spell the objective as the trial reports it (``accuracy`` -> ``val_accuracy``)."""
    key = objective_key(spec)
    if key == spec.objective.metric:
        return spec
    return spec.updated("objective", {"metric": key})


def search(spec: ExperimentSpec, *, observer: LoopObserver | None = None) -> TuneResult:
    spec = normalize_objective(spec)
    run_dir = spec.output_path(spec.runs_dir) / spec.name
    return run_search(
        spec, BuiltinTrial.from_spec(spec), observer=observer, output_dir=str(run_dir / "trials")
    )
