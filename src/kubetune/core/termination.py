"""Stop conditions. Each looks at the loop's :class:`StudyState` and may give a reason to stop.

Conditions read the incrementally kept state (counts, best value, trials since the best,
configs tried), so checking them costs the same at trial 10 as at trial 10,000.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence

from kubetune.core.attrs import RETRIED
from kubetune.core.stop_reason import StopKind, StopReason
from kubetune.core.study_state import StudyState

__all__ = [
    "RETRIED",
    "MaxTrials",
    "Patience",
    "SpaceExhausted",
    "StopCondition",
    "StudySnapshot",
    "StudyState",
    "TargetReached",
    "WallTime",
    "first_reason",
]

#: The name conditions took their input under before the state was kept incrementally;
#: ``StudySnapshot(trials, direction, started_at, final_failures)`` still builds one.
StudySnapshot = StudyState


class StopCondition(ABC):
    @abstractmethod
    def check(self, state: StudyState) -> StopReason | None:
        """A reason to stop (a ``str`` with a :class:`StopKind`), or None to go on."""

    @abstractmethod
    def describe(self) -> str:
        """What the condition waits for, in the spec's words (``kubetune validate``)."""


class MaxTrials(StopCondition):
    def __init__(self, max_trials: int) -> None:
        self.max_trials = max_trials

    def check(self, state: StudyState) -> StopReason | None:
        if state.finished_count >= self.max_trials:
            return StopReason(
                StopKind.MAX_TRIALS, f"max_trials reached ({self.max_trials} trials finished)"
            )
        return None

    def describe(self) -> str:
        return f"{self.max_trials} finished trials (limits.max_trials)"


class WallTime(StopCondition):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def check(self, state: StudyState) -> StopReason | None:
        if time.monotonic() - state.started_at >= self.seconds:
            return StopReason(StopKind.TIMEOUT, f"timeout reached ({self.seconds:g}s)")
        return None

    def describe(self) -> str:
        return f"{self.seconds:g}s of wall time (limits.timeout)"


class TargetReached(StopCondition):
    def __init__(self, target: float) -> None:
        self.target = target

    def check(self, state: StudyState) -> StopReason | None:
        best = state.best_value
        if best is None:
            return None
        hit = best >= self.target if state.direction == "maximize" else best <= self.target
        if not hit:
            return None
        return StopReason(
            StopKind.TARGET, f"target reached (best {best:.6g}, target {self.target:g})"
        )

    def describe(self) -> str:
        return f"a best value reaching {self.target:g} (objective.target)"


class Patience(StopCondition):
    """No improvement of the best value in the last ``patience`` finished trials.

    Trials count in number order. A failure that is retried (a dead worker) is not a
    finished trial: its retry is.
    """

    def __init__(self, patience: int) -> None:
        self.patience = patience

    def check(self, state: StudyState) -> StopReason | None:
        since = state.since_best()
        if since is not None and since >= self.patience:
            return StopReason(
                StopKind.PATIENCE, f"no improvement in the last {self.patience} trials"
            )
        return None

    def describe(self) -> str:
        return f"{self.patience} trials without improvement (limits.patience)"


class SpaceExhausted(StopCondition):
    """Every config of a finite space has been tried.

    A config is tried once a trial of it finished for good: completed, pruned, or failed
    without a retry (an invalid config is not worth another go). Running ones do not count
    yet: a dead worker's retry must still be able to run.
    """

    def __init__(self, cardinality: int) -> None:
        self.cardinality = cardinality

    def check(self, state: StudyState) -> StopReason | None:
        if len(state.configs) >= self.cardinality:
            return StopReason(
                StopKind.EXHAUSTED, f"search space exhausted (all {self.cardinality} configs tried)"
            )
        return None

    def describe(self) -> str:
        return f"all {self.cardinality} configs of the space tried"


def first_reason(conditions: Sequence[StopCondition], state: StudyState) -> StopReason | None:
    for condition in conditions:
        reason = condition.check(state)
        if reason:
            return reason
    return None
