"""Build an optuna sampler from a strategy name and its options."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.samplers import BaseSampler

from kubetune.core.space import SearchSpace, build_grid
from kubetune.core.space.grid import GridTooLargeError
from kubetune.core.strategies.evolution import RegularizedEvolutionSampler
from kubetune.core.strategies.grid import ConditionalGridSampler
from kubetune.errors import SpecError


@dataclass(frozen=True)
class SamplerContext:
    space: SearchSpace
    seed: int | None
    parallel: int


def _random(ctx: SamplerContext, opts: dict[str, Any]) -> BaseSampler:
    return optuna.samplers.RandomSampler(seed=ctx.seed)


def _tpe(ctx: SamplerContext, opts: dict[str, Any]) -> BaseSampler:
    return optuna.samplers.TPESampler(
        seed=ctx.seed,
        n_startup_trials=int(opts.get("n_startup_trials", 10)),
        multivariate=bool(opts.get("multivariate", True)),
        # group=True lets multivariate TPE model each conditional branch on its own.
        group=bool(opts.get("group", ctx.space.is_conditional)),
        constant_liar=bool(opts.get("constant_liar", ctx.parallel > 1)),
    )


def _gp(ctx: SamplerContext, opts: dict[str, Any]) -> BaseSampler:
    return optuna.samplers.GPSampler(
        seed=ctx.seed,
        n_startup_trials=int(opts.get("n_startup_trials", 10)),
        deterministic_objective=bool(opts.get("deterministic_objective", False)),
        warn_independent_sampling=False,
    )


def _cmaes(ctx: SamplerContext, opts: dict[str, Any]) -> BaseSampler:
    return optuna.samplers.CmaEsSampler(
        seed=ctx.seed,
        n_startup_trials=int(opts.get("n_startup_trials", 1)),
        sigma0=opts.get("sigma0"),
        restart_strategy=opts.get("restart_strategy"),
        # CMA-ES models float/int parameters; categorical ones are drawn by TPE instead.
        independent_sampler=optuna.samplers.TPESampler(seed=ctx.seed),
        warn_independent_sampling=False,
    )


def _qmc(ctx: SamplerContext, opts: dict[str, Any]) -> BaseSampler:
    return optuna.samplers.QMCSampler(
        seed=ctx.seed,
        qmc_type=str(opts.get("qmc_type", "sobol")),
        scramble=bool(opts.get("scramble", True)),
        warn_independent_sampling=False,
        warn_asynchronous_seeding=False,
    )


def _evolution(ctx: SamplerContext, opts: dict[str, Any]) -> BaseSampler:
    try:
        return RegularizedEvolutionSampler(
            population_size=int(opts.get("population_size", 20)),
            sample_size=int(opts.get("sample_size", 5)),
            seed=ctx.seed,
        )
    except ValueError as exc:
        raise SpecError(f"strategy.{exc}") from None


def _grid(ctx: SamplerContext, opts: dict[str, Any]) -> BaseSampler:
    points = int(opts.get("grid_points", 5))
    if points < 2:
        raise SpecError("strategy.grid_points: must be >= 2")
    try:
        grid = build_grid(ctx.space, points)
    except GridTooLargeError as exc:
        raise SpecError(str(exc)) from None
    return ConditionalGridSampler(grid, seed=ctx.seed, shuffle=bool(opts.get("shuffle", True)))


_Builder = Callable[[SamplerContext, dict[str, Any]], BaseSampler]

# name -> (builder, accepted options)
BUILDERS: dict[str, tuple[_Builder, frozenset[str]]] = {
    "random": (_random, frozenset()),
    "tpe": (_tpe, frozenset({"n_startup_trials", "multivariate", "group", "constant_liar"})),
    "gp": (_gp, frozenset({"n_startup_trials", "deterministic_objective"})),
    "cmaes": (_cmaes, frozenset({"n_startup_trials", "sigma0", "restart_strategy"})),
    "qmc": (_qmc, frozenset({"qmc_type", "scramble"})),
    "evolution": (_evolution, frozenset({"population_size", "sample_size"})),
    "grid": (_grid, frozenset({"grid_points", "shuffle"})),
}


def build_sampler(name: str, options: dict[str, Any], ctx: SamplerContext) -> BaseSampler:
    if name not in BUILDERS:
        raise SpecError(f"strategy.name: unknown strategy '{name}' (known: {', '.join(BUILDERS)})")
    builder, accepted = BUILDERS[name]
    unknown = sorted(set(options) - accepted)
    if unknown:
        known = ", ".join(sorted(accepted)) or "none"
        raise SpecError(f"strategy.{unknown[0]}: unknown option for {name} (known: {known})")
    return builder(ctx, options)
