"""One search: open the study, plan it, run the loop on a given executor, report the best.

Where trials run is the caller's choice (``kubetune.executors.create_executor``); this
module only sequences core pieces, so it is shared by ``kubetune.tune``, the search step
and the pipeline components.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.pruners import BasePruner
from optuna.samplers import BaseSampler

from kubetune.core.attrs import SCHEDULER, STRATEGY
from kubetune.core.events import LoopObserver
from kubetune.core.executor import Executor
from kubetune.core.fingerprint import check_fingerprint, study_fingerprint
from kubetune.core.loop import TuningLoop, trial_seed
from kubetune.core.plan import open_study, plan_search, sampler_context
from kubetune.core.run_context import RunContext
from kubetune.core.spec import ExperimentSpec
from kubetune.core.stop_reason import StopReason
from kubetune.core.strategies import build_sampler
from kubetune.core.warm_start import Candidate, warm_start_study

__all__ = ["TuneResult", "run_search"]


@dataclass(frozen=True)
class TuneResult:
    study: optuna.Study
    best_params: dict[str, Any]
    best_value: float | None
    # A trial, as optuna's ``study.best_trial`` is; its number is ``best_trial_number``.
    best_trial: optuna.trial.FrozenTrial | None
    best_trial_number: int | None
    # a str (the message, as shown and stored) that also carries ``.kind``, a StopKind
    stop_reason: StopReason
    strategy: str
    scheduler: str
    elapsed_s: float
    warm_started: int = 0  # configs of earlier runs queued first (see core.warm_start)


def run_search(
    spec: ExperimentSpec,
    executor: Executor,
    *,
    observer: LoopObserver | None = None,
    in_memory: bool = False,
    output_dir: str | None = None,
    data_fingerprint: str | None = None,
    accept_changed_study: bool = False,
    context: RunContext | None = None,
    sampler: BaseSampler | None = None,
    pruner: BasePruner | None = None,
    warm_start: int = 0,
    warm_start_fallback: Sequence[Candidate] = (),
) -> TuneResult:
    """Run the search loop of ``spec``; trials run on ``executor``.

    The study lives where ``context`` says (default: built from the spec, in memory when
    ``in_memory`` and the spec names no storage). Resuming a study whose trials were run
    with another metric, space, data, trainer or fidelity is refused unless
    ``accept_changed_study``. ``sampler``/``pruner``, when given, replace what the spec's
    strategy/scheduler would build.

    ``warm_start`` > 0 on a new study: up to that many of the best configs of the
    experiment's other studies in the same storage (else of ``warm_start_fallback``), those
    valid in this space, run first.
    """
    plan = plan_search(spec, sampler=sampler, pruner=pruner)
    context = context or RunContext.from_spec(spec, in_memory_study=in_memory)
    study = open_study(spec, plan, storage=context.study_storage, study_name=context.study_name)
    check_fingerprint(
        study, study_fingerprint(spec, data_fingerprint), accept_changes=accept_changed_study
    )
    resumed = len(study.get_trials(deepcopy=False))
    warm_started = 0
    # A grid visits every config anyway; a resumed study has its own trials to go on from.
    if warm_start > 0 and not resumed and plan.strategy != "grid":
        warm_started = warm_start_study(spec, study, warm_start, warm_start_fallback)
    if resumed and sampler is None:
        # A sampler seeded as in the first run would draw that run's configs all over again;
        # a seed derived from the study's length keeps the resumed run reproducible and new.
        ctx = sampler_context(spec, trial_seed(spec.seed, resumed))
        study.sampler = build_sampler(plan.strategy, spec.strategy.options, ctx)
    study.set_user_attr(STRATEGY, plan.strategy)
    study.set_user_attr(SCHEDULER, plan.scheduler)
    budget = spec.fidelity.max if spec.fidelity else None
    loop = TuningLoop(
        study,
        spec.space,
        executor,
        stop_conditions=plan.stop_conditions,
        max_trials=spec.limits.max_trials,
        seed=spec.seed,
        retries=spec.limits.retries,
        budget=budget,
        trial_deadline_s=spec.limits.trial_timeout,
        observer=observer,
        output_dir=output_dir,
        artifacts=context.artifacts,
    )
    result = loop.run()
    best = _best_trial(study)
    return TuneResult(
        study=study,
        best_params=spec.space.structure(best.params) if best else {},
        best_value=best.value if best else None,
        best_trial=best,
        best_trial_number=best.number if best else None,
        stop_reason=result.stop_reason,
        strategy=plan.strategy,
        scheduler=plan.scheduler,
        elapsed_s=result.elapsed_s,
        warm_started=warm_started,
    )


def _best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:
        return None  # no completed trial
