"""Synchronous successive halving and Hyperband, as rounds of a looping pipeline.

A pipeline round runs a batch of trials side by side and waits for all of them, so the
asynchronous schedulers (ASHA, the pruner-driven Hyperband of the controller) become their
synchronous originals here:

- a *bracket* starts ``width`` new configs at its first budget;
- each later *rung* (one round) runs the best ``1/reduction_factor`` of the previous rung
  again at ``reduction_factor`` times the budget, up to the fidelity maximum;
- ``asha`` repeats one bracket that starts at ``fidelity.min`` (successive halving);
  ``hyperband`` cycles brackets that start at ever larger budgets (fewer rungs each), so a
  bad guess about how early configs can be judged costs little;
- without a fidelity, or with scheduler ``none``, a bracket is one round at full budget.

Pure arithmetic: no optuna, no I/O, so the compiler (how many rounds to unroll) and the
suggest/record steps (which budget, how many survive) share it.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubetune.core.spec import ExperimentSpec
from kubetune.core.strategies import choose_scheduler
from kubetune.errors import SpecError

__all__ = ["SyncSchedule", "max_rounds", "schedule_for"]

# Schedulers a synchronous round structure can follow; median pruning needs a live
# controller that answers each report, which only the controller form has.
_SYNC_SCHEDULERS = ("hyperband", "asha", "none")


@dataclass(frozen=True)
class SyncSchedule:
    """The budgets of each bracket's rungs; ``None`` budget: the trainer's own."""

    brackets: tuple[tuple[int | None, ...], ...]
    reduction_factor: int
    scheduler: str

    def bracket(self, index: int) -> tuple[int | None, ...]:
        return self.brackets[index % len(self.brackets)]

    def survivors(self, finished: int) -> int:
        """How many of a rung's finished configs go on to the next rung."""
        return max(1, finished // self.reduction_factor) if finished else 0


def schedule_for(spec: ExperimentSpec) -> SyncSchedule:
    fid = spec.fidelity
    if fid is None:
        return SyncSchedule(((None,),), 2, "none")
    # the rounds do not apply the fidelity guard: auto keeps Hyperband's hedge here
    scheduler = choose_scheduler(
        fid.scheduler, has_fidelity=True, strategy=spec.strategy.name, guarded=False
    )
    if scheduler not in _SYNC_SCHEDULERS:
        raise SpecError(
            f"fidelity.scheduler: '{scheduler}' needs asynchronous reports; the looping"
            f" pipeline runs {', '.join(_SYNC_SCHEDULERS)} (or use the controller form)"
        )
    eta = fid.reduction_factor
    if scheduler == "none":
        return SyncSchedule(((fid.max,),), eta, scheduler)
    if scheduler == "asha":
        return SyncSchedule((_rungs(fid.min, fid.max, eta),), eta, scheduler)
    s_max = _log_floor(fid.max / fid.min, eta)
    starts = [max(fid.min, round(fid.max / eta**s)) for s in range(s_max, -1, -1)]
    return SyncSchedule(tuple(_rungs(start, fid.max, eta) for start in starts), eta, scheduler)


def _rungs(start: int, top: int, eta: int) -> tuple[int, ...]:
    budgets = [start]
    while budgets[-1] * eta < top:
        budgets.append(budgets[-1] * eta)
    if budgets[-1] < top:
        budgets.append(top)
    return tuple(budgets)


def _log_floor(ratio: float, base: int) -> int:
    # floor(log_base(ratio)) without float error at exact powers (27/1 in base 3 -> 3)
    power = 0
    while base ** (power + 1) <= ratio * (1 + 1e-9):
        power += 1
    return power


def max_rounds(spec: ExperimentSpec, *, width: int | None = None) -> int:
    """How many rounds a looping pipeline needs for ``limits.max_trials`` new configs,
    ``width`` (default ``limits.parallel``) per bracket."""
    max_trials = spec.limits.max_trials
    if max_trials is None:
        raise SpecError(
            "limits.max_trials: the looping pipeline unrolls its rounds at compile time and"
            " needs max_trials to know how many (or give --max-rounds)"
        )
    width = width or spec.limits.parallel
    schedule = schedule_for(spec)
    rounds, left, index = 0, max_trials, 0
    while left > 0:
        rounds += len(schedule.bracket(index))
        left -= min(width, left)
        index += 1
    return rounds
