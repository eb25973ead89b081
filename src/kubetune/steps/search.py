"""Step: search the space with the spec's trainer on the spec's executor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kubetune.artifacts import StepArtifacts
from kubetune.core.events import LoopObserver
from kubetune.core.run_context import RunContext
from kubetune.core.search import TuneResult, run_search
from kubetune.core.spec import ExperimentSpec
from kubetune.core.strategies.darts import DerivedConfigSampler, darts_space, flat_params
from kubetune.core.warm_start import Candidate
from kubetune.executors import create_executor
from kubetune.steps.darts import darts_result
from kubetune.steps.trial import BuiltinTrial, objective_key

# study user attr: the DARTS search's derived config, learned weights and cost
DARTS = "kubetune.darts"


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
    warm_start: int = 0,
    warm_start_fallback: Sequence[Candidate] = (),
) -> TuneResult:
    """Run the search; the study and trial files go where ``context`` says (default: the
    spec's run folder). ``warm_start``: see :func:`kubetune.core.search.run_search`."""
    spec = normalize_objective(spec)
    context = context or RunContext.from_spec(spec)
    trials_dir = context.trials_dir
    sampler = None
    darts: dict[str, Any] | None = None
    if spec.strategy.name == "darts":
        # one-shot: the supernet search derives the architecture, the loop trains it from
        # scratch as its one trial (the options were the supernet's: the loop has none)
        # its state is checkpointed in the artifact store: a restarted controller (another
        # pod, an empty disk) resumes the supernet from its last epoch
        checkpoints = StepArtifacts.open_step(
            context.artifacts, context.study_name, "darts", base_dir=context.base_dir
        )
        darts = darts_result(spec, context.run_dir, checkpoints=checkpoints)
        kind = spec.trainer.kind if spec.trainer is not None else None
        dspace = darts_space(spec.space, kind)
        sampler = DerivedConfigSampler(flat_params(dspace, darts["config"]))
        spec = spec.replaced({"strategy": {"name": "darts"}})
    with create_executor(
        spec, trial_fn=BuiltinTrial.from_spec(spec), work_dir=trials_dir
    ) as executor:
        result = run_search(
            spec,
            executor,
            observer=observer,
            output_dir=str(trials_dir),
            data_fingerprint=data_fingerprint,
            accept_changed_study=accept_changed_study,
            context=context,
            warm_start=warm_start,
            warm_start_fallback=warm_start_fallback,
            sampler=sampler,
        )
    if darts is not None:
        result.study.set_user_attr(DARTS, darts)
    return result
