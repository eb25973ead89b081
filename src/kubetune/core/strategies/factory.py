"""Build an optuna sampler from a strategy name and its options."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import optuna
from optuna.samplers import BaseSampler

from kubetune.core.schedulers import FidelityRange
from kubetune.core.space import SearchSpace, build_grid
from kubetune.core.space.grid import GridTooLargeError
from kubetune.core.strategies.bohb import BOHBSampler, hyperband_budgets
from kubetune.core.strategies.darts import DARTS_ORDERS, DerivedConfigSampler, darts_space
from kubetune.core.strategies.evolution import RegularizedEvolutionSampler
from kubetune.core.strategies.grid import ConditionalGridSampler
from kubetune.core.strategies.pbt import PopulationBasedSampler
from kubetune.core.strategies.portfolio import ALLOCATIONS, PORTFOLIO_MEMBERS, PortfolioSampler
from kubetune.core.strategies.rank_gp import RankGPSampler, only_categorical
from kubetune.core.strategies.rl import ReinforceSampler
from kubetune.errors import SpecError

MAX_GRID_POINTS = 10_000


@dataclass(frozen=True)
class SamplerContext:
    space: SearchSpace
    seed: int | None
    parallel: int
    # the spec's fidelity, when it has one (BOHB models per budget of Hyperband's rungs)
    fidelity: FidelityRange | None = None
    # limits.max_trials (SMAC sizes its initial design from it)
    max_trials: int | None = None
    # trainer.kind, when the spec has a built-in trainer (darts relaxes that trainer's space)
    trainer: str | None = None


def _int_opt(opts: dict[str, Any], key: str, default: int, minimum: int) -> int:
    value = opts.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(f"strategy.{key}: must be an integer >= {minimum} (got {value!r})")
    return value


def _bool_opt(opts: dict[str, Any], key: str, default: bool) -> bool:
    value = opts.get(key, default)
    if not isinstance(value, bool):
        raise SpecError(f"strategy.{key}: must be true or false (got {value!r})")
    return value


def _random(ctx: SamplerContext, opts: dict[str, Any]) -> BaseSampler:
    return optuna.samplers.RandomSampler(seed=ctx.seed)


def _tpe(ctx: SamplerContext, opts: dict[str, Any]) -> BaseSampler:
    return optuna.samplers.TPESampler(
        seed=ctx.seed,
        n_startup_trials=_int_opt(opts, "n_startup_trials", 10, 0),
        multivariate=_bool_opt(opts, "multivariate", True),
        # group=True lets multivariate TPE model each conditional branch on its own.
        group=_bool_opt(opts, "group", ctx.space.is_conditional),
        constant_liar=_bool_opt(opts, "constant_liar", ctx.parallel > 1),
    )


GP_VALUE_MODELS = ("auto", "values", "ranks")


def gp_models_ranks(space: SearchSpace, opts: dict[str, Any]) -> bool:
    """``strategy.model``: what the GP fits; ``auto`` fits ranks in categorical-only spaces."""
    model = opts.get("model", "auto")
    if model not in GP_VALUE_MODELS:
        raise SpecError(f"strategy.model: one of {', '.join(GP_VALUE_MODELS)} (got {model!r})")
    return model == "ranks" or (model == "auto" and only_categorical(space))


def _gp(ctx: SamplerContext, opts: dict[str, Any]) -> BaseSampler:
    sampler = RankGPSampler if gp_models_ranks(ctx.space, opts) else optuna.samplers.GPSampler
    return sampler(
        seed=ctx.seed,
        n_startup_trials=_int_opt(opts, "n_startup_trials", 10, 0),
        deterministic_objective=_bool_opt(opts, "deterministic_objective", False),
        warn_independent_sampling=False,
    )


def _cmaes(ctx: SamplerContext, opts: dict[str, Any]) -> BaseSampler:
    popsize = opts.get("popsize")
    return optuna.samplers.CmaEsSampler(
        seed=ctx.seed,
        n_startup_trials=_int_opt(opts, "n_startup_trials", 1, 0),
        popsize=None if popsize is None else _int_opt(opts, "popsize", 0, 2),
        # CMA-ES models float/int parameters; categorical ones are drawn by TPE instead.
        independent_sampler=optuna.samplers.TPESampler(seed=ctx.seed),
        warn_independent_sampling=False,
    )


def _qmc(ctx: SamplerContext, opts: dict[str, Any]) -> BaseSampler:
    qmc_type = opts.get("qmc_type", "sobol")
    if qmc_type not in ("sobol", "halton"):
        raise SpecError(f"strategy.qmc_type: must be sobol or halton (got {qmc_type!r})")
    return optuna.samplers.QMCSampler(
        seed=ctx.seed,
        qmc_type=qmc_type,
        scramble=_bool_opt(opts, "scramble", True),
        warn_independent_sampling=False,
        warn_asynchronous_seeding=False,
    )


def _evolution(ctx: SamplerContext, opts: dict[str, Any]) -> BaseSampler:
    population_size = _int_opt(opts, "population_size", 20, 2)
    sample_size = _int_opt(opts, "sample_size", min(5, population_size), 1)
    if sample_size > population_size:
        raise SpecError(
            f"strategy.sample_size: must be <= population_size ({sample_size} > {population_size})"
        )
    return RegularizedEvolutionSampler(
        population_size=population_size, sample_size=sample_size, seed=ctx.seed
    )


def _pbt(ctx: SamplerContext, opts: dict[str, Any]) -> BaseSampler:
    quantile = opts.get("quantile", 0.25)
    if (
        isinstance(quantile, bool)
        or not isinstance(quantile, int | float)
        or not 0 <= quantile <= 0.5
    ):
        raise SpecError(f"strategy.quantile: must be between 0 and 0.5 (got {quantile!r})")
    resample = opts.get("resample_probability", 0.25)
    if (
        isinstance(resample, bool)
        or not isinstance(resample, int | float)
        or not 0 <= resample <= 1
    ):
        raise SpecError(
            f"strategy.resample_probability: must be between 0 and 1 (got {resample!r})"
        )
    return PopulationBasedSampler(
        population_size=_int_opt(opts, "population_size", 8, 2),
        quantile=float(quantile),
        resample_probability=float(resample),
        seed=ctx.seed,
    )


def _grid(ctx: SamplerContext, opts: dict[str, Any]) -> BaseSampler:
    points = _int_opt(opts, "grid_points", 5, 2)
    if points > MAX_GRID_POINTS:  # values per continuous range: the grid grows as points**n
        raise SpecError(f"strategy.grid_points: must be <= {MAX_GRID_POINTS} (got {points})")
    try:
        grid = build_grid(ctx.space, points)
    except GridTooLargeError as exc:
        raise SpecError(str(exc)) from None
    return ConditionalGridSampler(grid, seed=ctx.seed, shuffle=_bool_opt(opts, "shuffle", True))


def _float_opt(opts: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = opts.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise SpecError(f"strategy.{key}: must be a number in [{low}, {high}] (got {value!r})")
    return float(value)


def _bohb(ctx: SamplerContext, opts: dict[str, Any]) -> BaseSampler:
    fid = ctx.fidelity
    budgets = (
        None
        if fid is None
        else hyperband_budgets(fid.min_resource, fid.max_resource, fid.reduction_factor)
    )
    top = _float_opt(opts, "top_fraction", 0.15, 0.01, 0.99)
    min_points = opts.get("min_points_in_model")
    return BOHBSampler(
        ctx.space.distributions(),
        budgets=budgets,
        random_fraction=_float_opt(opts, "random_fraction", 1 / 3, 0.0, 1.0),
        top_fraction=top,
        num_samples=_int_opt(opts, "num_samples", 64, 1),
        bandwidth_factor=_float_opt(opts, "bandwidth_factor", 3.0, 0.01, 100.0),
        min_bandwidth=_float_opt(opts, "min_bandwidth", 0.1, 1e-6, 1.0),
        min_points_in_model=(
            None if min_points is None else _int_opt(opts, "min_points_in_model", 0, 2)
        ),
        seed=ctx.seed,
    )


def _rl(ctx: SamplerContext, opts: dict[str, Any]) -> BaseSampler:
    return ReinforceSampler(
        ctx.space.distributions(),
        lr=_float_opt(opts, "lr", 0.2, 1e-6, 100.0),
        baseline_decay=_float_opt(opts, "baseline_decay", 0.9, 0.0, 0.999),
        bins=_int_opt(opts, "bins", 10, 2),
        seed=ctx.seed,
    )


def _smac(ctx: SamplerContext, opts: dict[str, Any]) -> BaseSampler:
    from kubetune.core.strategies.smac3 import SmacSampler  # the smac extra, imported lazily

    facade = opts.get("facade", "hpo")
    if facade not in ("hpo", "bb"):
        raise SpecError(f"strategy.facade: must be hpo or bb (got {facade!r})")
    return SmacSampler(
        ctx.space,
        n_trials=_int_opt(opts, "n_trials", ctx.max_trials or 1000, 1),
        facade=facade,
        seed=ctx.seed,
    )


DARTS_OPTIONS = frozenset({"epochs", "arch_lr", "weight_lr", "batch_size", "order"})


def darts_options(opts: dict[str, Any]) -> dict[str, Any]:
    """The supernet search's settings, checked (shared with the search step)."""
    options = {
        "epochs": _int_opt(opts, "epochs", 30, 1),
        "arch_lr": _float_opt(opts, "arch_lr", 3e-3, 1e-6, 10.0),
        "weight_lr": _float_opt(opts, "weight_lr", 1e-2, 1e-6, 10.0),
        "batch_size": _int_opt(opts, "batch_size", 64, 2),
    }
    order = opts.get("order", 1)
    if isinstance(order, bool) or order not in DARTS_ORDERS:
        raise SpecError(f"strategy.order: 1 (first-order DARTS) or 2 (got {order!r})")
    # Only a second-order search names its order: a first-order one keeps the options (and
    # so the saved result and checkpoint key) that earlier versions wrote.
    if order == 2:
        options["order"] = 2
    return options


def _darts(ctx: SamplerContext, opts: dict[str, Any]) -> BaseSampler:
    darts_space(ctx.space, ctx.trainer)  # refuses a space it cannot relax, naming the param
    darts_options(opts)
    return DerivedConfigSampler(None, seed=ctx.seed)  # the search step supplies the config


def _portfolio(ctx: SamplerContext, opts: dict[str, Any]) -> BaseSampler:
    members = opts.get("members", ["gp", "tpe"])
    if (
        not isinstance(members, list)
        or not members
        or any(m not in PORTFOLIO_MEMBERS for m in members)
    ):
        raise SpecError(
            f"strategy.members: a list of {', '.join(PORTFOLIO_MEMBERS)} (got {members!r})"
        )
    # each member its own seed: seeded like the start-up, a member's own random start-up
    # (too few trials finished yet, with parallel trials) would repeat the start-up's draws
    seeds = [None if ctx.seed is None else ctx.seed + 1 + i for i in range(len(members))]
    allocation = opts.get("allocation", "credit")
    if allocation not in ALLOCATIONS:
        raise SpecError(
            f"strategy.allocation: one of {', '.join(ALLOCATIONS)} (got {allocation!r})"
        )
    return PortfolioSampler(
        [build_sampler(m, {}, replace(ctx, seed=s)) for m, s in zip(members, seeds, strict=True)],
        n_startup_trials=_int_opt(opts, "n_startup_trials", 10, 0),
        allocation=allocation,
        explore_every=_int_opt(opts, "explore_every", 4, 1),
        deduplicate=_bool_opt(opts, "deduplicate", True),
        seed=ctx.seed,
    )


_Builder = Callable[[SamplerContext, dict[str, Any]], BaseSampler]

# name -> (builder, accepted options)
BUILDERS: dict[str, tuple[_Builder, frozenset[str]]] = {
    "random": (_random, frozenset()),
    "tpe": (_tpe, frozenset({"n_startup_trials", "multivariate", "group", "constant_liar"})),
    "gp": (_gp, frozenset({"n_startup_trials", "deterministic_objective", "model"})),
    "cmaes": (_cmaes, frozenset({"n_startup_trials", "popsize"})),
    "qmc": (_qmc, frozenset({"qmc_type", "scramble"})),
    "evolution": (_evolution, frozenset({"population_size", "sample_size"})),
    "grid": (_grid, frozenset({"grid_points", "shuffle"})),
    "pbt": (_pbt, frozenset({"population_size", "quantile", "resample_probability"})),
    "bohb": (
        _bohb,
        frozenset(
            {
                "random_fraction",
                "top_fraction",
                "num_samples",
                "bandwidth_factor",
                "min_bandwidth",
                "min_points_in_model",
            }
        ),
    ),
    "rl": (_rl, frozenset({"lr", "baseline_decay", "bins"})),
    "smac": (_smac, frozenset({"facade", "n_trials"})),
    "darts": (_darts, DARTS_OPTIONS),
    "portfolio": (
        _portfolio,
        frozenset({"members", "n_startup_trials", "allocation", "explore_every", "deduplicate"}),
    ),
}


def build_sampler(name: str, options: dict[str, Any], ctx: SamplerContext) -> BaseSampler:
    if name not in BUILDERS:
        raise SpecError(f"strategy.name: unknown strategy '{name}' (known: {', '.join(BUILDERS)})")
    builder, accepted = BUILDERS[name]
    unknown = sorted(set(options) - accepted)
    if unknown:
        known = ", ".join(sorted(accepted)) or "none"
        raise SpecError(f"strategy.{unknown[0]}: unknown option for {name} (known: {known})")
    # "QMCSampler is experimental", "Argument group is experimental": nothing a user can act on
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return builder(ctx, options)
