"""What the tuning loop tells observers (progress bars, logs) while it runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from optuna.trial import FrozenTrial


@dataclass(frozen=True)
class LoopProgress:
    """Counts of the study so far (resumed trials included)."""

    completed: int
    pruned: int
    failed: int  # failed for good: not queued to run again
    running: int
    best_value: float | None
    max_trials: int | None  # None when the loop has no trial limit
    # Attempts that ended (a dead worker, a cancel at timeout) with their config queued to
    # run again: not finished trials, so not counted as failed either.
    requeued: int = 0

    @property
    def finished(self) -> int:
        return self.completed + self.pruned + self.failed


class LoopObserver(Protocol):
    """Receives loop events. All methods are called from the controller thread."""

    def on_start(self, progress: LoopProgress) -> None: ...

    def on_trial_finished(self, trial: FrozenTrial, progress: LoopProgress) -> None: ...

    def on_stop(self, reason: str, progress: LoopProgress) -> None: ...
