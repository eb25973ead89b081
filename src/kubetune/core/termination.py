"""Stop conditions. Each looks at a snapshot of the study and may name a reason to stop."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from optuna.trial import FrozenTrial, TrialState

# user_attr the loop sets on a failed trial: True when the same config is queued again
RETRIED = "kubetune:retried"


def _done(trial: FrozenTrial) -> bool:
    """Finished for good: a failure that is retried (a dead worker) is not; its retry will be."""
    if trial.state == TrialState.FAIL:
        return not trial.user_attrs.get(RETRIED)
    return trial.state.is_finished()


@dataclass(frozen=True)
class StudySnapshot:
    trials: Sequence[FrozenTrial]  # every trial of the study, resumed ones included
    direction: Literal["minimize", "maximize"]
    started_at: float  # time.monotonic() when this run of the loop started
    final_failures: int  # failed trials that will not be retried

    # Cached: several conditions (and the loop) ask, once per event, on every trial so far.
    @cached_property
    def completed(self) -> list[FrozenTrial]:
        return [t for t in self.trials if t.state == TrialState.COMPLETE]

    @cached_property
    def finished_count(self) -> int:
        done = sum(1 for t in self.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED))
        return done + self.final_failures

    def best_value(self) -> float | None:
        values = [t.value for t in self.completed if t.value is not None]
        if not values:
            return None
        return max(values) if self.direction == "maximize" else min(values)


class StopCondition(ABC):
    @abstractmethod
    def check(self, snap: StudySnapshot) -> str | None:
        """A human-readable reason to stop, or None to go on."""


class MaxTrials(StopCondition):
    def __init__(self, max_trials: int) -> None:
        self.max_trials = max_trials

    def check(self, snap: StudySnapshot) -> str | None:
        if snap.finished_count >= self.max_trials:
            return f"max_trials reached ({self.max_trials} trials finished)"
        return None


class WallTime(StopCondition):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def check(self, snap: StudySnapshot) -> str | None:
        if time.monotonic() - snap.started_at >= self.seconds:
            return f"timeout reached ({self.seconds:g}s)"
        return None


class TargetReached(StopCondition):
    def __init__(self, target: float) -> None:
        self.target = target

    def check(self, snap: StudySnapshot) -> str | None:
        best = snap.best_value()
        if best is None:
            return None
        hit = best >= self.target if snap.direction == "maximize" else best <= self.target
        return f"target reached (best {best:.6g}, target {self.target:g})" if hit else None


class Patience(StopCondition):
    """No improvement of the best value in the last ``patience`` finished trials.

    A failure that is retried (a dead worker) is not a finished trial: its retry is.
    """

    def __init__(self, patience: int) -> None:
        self.patience = patience

    def check(self, snap: StudySnapshot) -> str | None:
        finished = sorted((t for t in snap.trials if _done(t)), key=lambda t: t.number)
        sign = 1.0 if snap.direction == "maximize" else -1.0
        best: float | None = None
        since = 0
        for t in finished:
            if (
                t.state == TrialState.COMPLETE
                and t.value is not None
                and (best is None or sign * t.value > sign * best)
            ):
                best, since = t.value, 0
            else:
                since += 1
        if best is not None and since >= self.patience:
            return f"no improvement in the last {self.patience} trials"
        return None


class SpaceExhausted(StopCondition):
    """Every config of a finite space has been tried.

    A config is tried once a trial of it finished for good: completed, pruned, or failed
    without a retry (an invalid config is not worth another go). Running ones do not count
    yet: a dead worker's retry must still be able to run.
    """

    def __init__(self, cardinality: int) -> None:
        self.cardinality = cardinality

    def check(self, snap: StudySnapshot) -> str | None:
        seen = {
            tuple(sorted((k, repr(v)) for k, v in t.params.items()))
            for t in snap.trials
            if _done(t)
        }
        if len(seen) >= self.cardinality:
            return f"search space exhausted (all {self.cardinality} configs tried)"
        return None


def first_reason(conditions: Sequence[StopCondition], snap: StudySnapshot) -> str | None:
    for condition in conditions:
        reason = condition.check(snap)
        if reason:
            return reason
    return None
