"""The ``auto`` strategy: a documented rule that picks a strategy from the space and budget.

1. A finite space whose every config fits in ``max_trials``      -> ``grid``
2. A conditional or architecture space                          -> ``tpe`` (multivariate, grouped)
3. All-numeric, at most 8 parameters, at most 200 trials        -> ``gp``
4. Anything else                                                -> ``tpe`` (multivariate)

The scheduler ``auto`` is ``hyperband`` whenever a fidelity (budget parameter) is given,
which with TPE gives the BOHB-style method, and ``none`` otherwise. (``curve``, learning-curve
extrapolation, is never chosen by ``auto``: it is for long, smooth curves; see the README.)
With ``fidelity.kind: data_fraction`` the scheduler ``auto`` is ``asha``.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubetune.core.space import SearchSpace

GP_MAX_PARAMS = 8
GP_MAX_TRIALS = 200


@dataclass(frozen=True)
class StrategyChoice:
    name: str
    reason: str


def choose_strategy(space: SearchSpace, max_trials: int | None) -> StrategyChoice:
    size = space.cardinality(cap=max_trials if max_trials is not None else 10_000)
    if size is not None and max_trials is not None and size <= max_trials:
        return StrategyChoice("grid", f"all {size} configs fit in max_trials={max_trials}")
    if space.is_conditional:
        return StrategyChoice("tpe", "conditional/architecture space: multivariate grouped TPE")
    n_params = len(space.searched_names)
    if (
        space.is_numeric
        and n_params <= GP_MAX_PARAMS
        and (max_trials is not None and max_trials <= GP_MAX_TRIALS)
    ):
        return StrategyChoice("gp", f"{n_params} numeric parameters, {max_trials} trials")
    return StrategyChoice("tpe", "large or mixed space: multivariate TPE")


def choose_scheduler(scheduler: str, has_fidelity: bool, *, data_fraction: bool = False) -> str:
    if scheduler != "auto":
        return scheduler
    if data_fraction:  # each rung refits from scratch: Hyperband's full-budget brackets cost most
        return "asha"
    return "hyperband" if has_fidelity else "none"
