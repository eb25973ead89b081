"""Turn a validated spec into the pieces the loop runs with: study, sampler, pruner, stops."""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from optuna.pruners import BasePruner
from optuna.samplers import BaseSampler

from kubetune.core.schedulers import FidelityRange, build_pruner
from kubetune.core.spec import ExperimentSpec
from kubetune.core.storage import open_storage
from kubetune.core.strategies import (
    SamplerContext,
    build_sampler,
    choose_scheduler,
    choose_strategy,
)
from kubetune.core.termination import (
    MaxTrials,
    Patience,
    SpaceExhausted,
    StopCondition,
    TargetReached,
    WallTime,
)
from kubetune.errors import SpecError


@dataclass(frozen=True)
class SearchPlan:
    strategy: str
    strategy_reason: str
    scheduler: str
    sampler: BaseSampler
    pruner: BasePruner
    stop_conditions: list[StopCondition]


def plan_search(
    spec: ExperimentSpec,
    *,
    sampler: BaseSampler | None = None,
    pruner: BasePruner | None = None,
) -> SearchPlan:
    """The plan for ``spec``; a given ``sampler``/``pruner`` instance is used as it is."""
    fid = spec.fidelity
    if pruner is not None:
        scheduler = type(pruner).__name__
    else:
        scheduler = choose_scheduler(
            fid.scheduler if fid else "none",
            has_fidelity=fid is not None,
            data_fraction=fid is not None and fid.kind == "data_fraction",
            strategy=spec.strategy.name,
            guarded=fid is not None and fid.guard,
        )
        pruner = (
            build_pruner(
                scheduler,
                min_resource=fid.min,
                max_resource=fid.max,
                reduction_factor=fid.reduction_factor,
                curve=fid.curve_options(),
                guard=fid.guard,
            )
            if fid is not None
            else optuna.pruners.NopPruner()
        )
    if sampler is not None:
        if spec.strategy.options:
            raise SpecError(
                f"strategy.{sorted(spec.strategy.options)[0]}: options apply to a strategy"
                " name, not to a sampler instance"
            )
        # a kubetune sampler built outside the factory (darts' derived config) keeps its name
        name = getattr(sampler, "strategy_name", type(sampler).__name__)
        return SearchPlan(name, "sampler given", scheduler, sampler, pruner, stop_conditions(spec))
    strategy: str = spec.strategy.name
    reason = "chosen in the spec"
    options = spec.strategy.options
    if strategy == "auto":
        choice = choose_strategy(
            spec.space, spec.limits.max_trials, has_fidelity=spec.fidelity is not None
        )
        strategy, reason = choice.name, choice.reason
        if options:
            raise SpecError(
                f"strategy.{sorted(options)[0]}: options need an explicit strategy name, not auto"
            )
    ctx = sampler_context(spec, spec.seed)
    sampler = build_sampler(strategy, options, ctx)
    return SearchPlan(strategy, reason, scheduler, sampler, pruner, stop_conditions(spec))


def sampler_context(spec: ExperimentSpec, seed: int | None) -> SamplerContext:
    """What a strategy is built from: the space, the seed, parallelism and the fidelity."""
    fid = spec.fidelity
    return SamplerContext(
        space=spec.space,
        seed=seed,
        parallel=spec.limits.parallel,
        max_trials=spec.limits.max_trials,
        fidelity=None if fid is None else FidelityRange(fid.min, fid.max, fid.reduction_factor),
        trainer=spec.trainer.kind if spec.trainer is not None else None,
    )


def stop_conditions(spec: ExperimentSpec) -> list[StopCondition]:
    limits = spec.limits
    conditions: list[StopCondition] = []
    if limits.max_trials is not None:
        conditions.append(MaxTrials(limits.max_trials))
    if limits.timeout is not None:
        conditions.append(WallTime(limits.timeout))
    if spec.objective.target is not None:
        conditions.append(TargetReached(spec.objective.target))
    if limits.patience is not None:
        conditions.append(Patience(limits.patience))
    size = spec.space.cardinality(cap=100_000)
    if size is not None and size <= 100_000:
        conditions.append(SpaceExhausted(size))
    if not conditions:
        raise SpecError(
            "limits: nothing would stop this search; set max_trials, timeout, patience or"
            " objective.target"
        )
    return conditions


def open_study(
    spec: ExperimentSpec,
    plan: SearchPlan,
    *,
    storage: str | None,
    study_name: str | None = None,
) -> optuna.Study:
    """Create the study, or load it to resume. ``storage`` is where it lives, as a
    :class:`~kubetune.core.run_context.RunContext` resolved it (None: in memory);
    ``study_name`` defaults to the experiment's name."""
    storage_obj = open_storage(storage)
    name = study_name or spec.name
    try:
        study = optuna.create_study(
            study_name=name,
            storage=storage_obj,
            sampler=plan.sampler,
            pruner=plan.pruner,
            direction=spec.direction,
            load_if_exists=True,
        )
    except ValueError as exc:
        raise SpecError(f"storage: cannot open study '{name}': {exc}") from None
    if study.direction.name.lower() != spec.direction:
        raise SpecError(
            f"objective.direction: the stored study '{name}' was created to"
            f" {study.direction.name.lower()}; use another experiment name or storage"
        )
    return study
