"""Multi-fidelity schedulers (optuna pruners) by name: one registry, like the strategies.

``auto`` is not a builder: it is resolved first (see ``strategies.auto.choose_scheduler``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import optuna
from optuna.pruners import BasePruner

from kubetune.core.curve_pruner import CurveOptions, CurvePruner
from kubetune.core.fidelity_guard import FidelityGuard, GuardedHyperbandPruner
from kubetune.errors import SpecError

__all__ = ["BUILDERS", "SCHEDULER_NAMES", "FidelityRange", "build_pruner", "known_schedulers"]


@dataclass(frozen=True)
class FidelityRange:
    """What a scheduler is built from: the spec's ``fidelity`` section."""

    min_resource: int
    max_resource: int
    reduction_factor: int
    curve: CurveOptions = field(default_factory=CurveOptions)  # only ``curve`` reads it
    #: the rank-based schedulers (hyperband, asha, median) stop cutting at a step whose
    #: ranking proves opposite to the full budget's (core/fidelity_guard.py)
    guard: bool = True


def _hyperband(r: FidelityRange) -> BasePruner:
    if r.guard:
        return GuardedHyperbandPruner(r.min_resource, r.max_resource, r.reduction_factor)
    return optuna.pruners.HyperbandPruner(
        min_resource=r.min_resource,
        max_resource=r.max_resource,
        reduction_factor=r.reduction_factor,
    )


def _guarded(r: FidelityRange, pruner: BasePruner) -> BasePruner:
    return FidelityGuard(pruner) if r.guard else pruner


def _asha(r: FidelityRange) -> BasePruner:
    return _guarded(
        r,
        optuna.pruners.SuccessiveHalvingPruner(
            min_resource=r.min_resource, reduction_factor=r.reduction_factor
        ),
    )


def _median(r: FidelityRange) -> BasePruner:
    return _guarded(
        r, optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=r.min_resource)
    )


def _none(r: FidelityRange) -> BasePruner:
    return optuna.pruners.NopPruner()


def _curve(r: FidelityRange) -> BasePruner:
    return CurvePruner(r.max_resource, r.curve)


BUILDERS: dict[str, Callable[[FidelityRange], BasePruner]] = {
    "hyperband": _hyperband,
    "asha": _asha,
    "median": _median,
    "none": _none,
    "curve": _curve,
}

# Every name ``fidelity.scheduler`` accepts.
SCHEDULER_NAMES: tuple[str, ...] = ("auto", *BUILDERS)


def known_schedulers() -> tuple[str, ...]:
    """``SCHEDULER_NAMES``, read from the registry when asked (it may have grown since)."""
    return ("auto", *BUILDERS)


def build_pruner(
    name: str,
    *,
    min_resource: int,
    max_resource: int,
    reduction_factor: int,
    curve: CurveOptions | None = None,
    guard: bool = True,
) -> BasePruner:
    """``name`` is already resolved (``auto`` replaced, see strategies.auto). ``guard``: the
    fidelity guard on the rank-based schedulers (see ``FidelityRange.guard``)."""
    builder = BUILDERS.get(name)
    if builder is None:
        raise SpecError(
            f"fidelity.scheduler: unknown scheduler '{name}' (known: {', '.join(BUILDERS)})"
        )
    fidelity = FidelityRange(
        min_resource, max_resource, reduction_factor, curve or CurveOptions(), guard
    )
    return builder(fidelity)
