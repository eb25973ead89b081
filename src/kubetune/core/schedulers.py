"""Multi-fidelity schedulers (optuna pruners) by name."""

from __future__ import annotations

import optuna
from optuna.pruners import BasePruner

SCHEDULER_NAMES = ("hyperband", "asha", "median", "none")


def build_pruner(
    name: str, *, min_resource: int, max_resource: int, reduction_factor: int
) -> BasePruner:
    """``name`` is already resolved (``auto`` replaced, see strategies.auto)."""
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=min_resource, max_resource=max_resource, reduction_factor=reduction_factor
        )
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=min_resource, reduction_factor=reduction_factor
        )
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=min_resource)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(
        f"fidelity.scheduler: unknown scheduler '{name}' (known: {', '.join(SCHEDULER_NAMES)})"
    )
