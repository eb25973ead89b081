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
    failed: int
    running: int
    best_value: float | None
    max_trials: int | None  # None when the loop has no trial limit

    @property
    def finished(self) -> int:
        return self.completed + self.pruned + self.failed


class LoopObserver(Protocol):
    """Receives loop events. All methods are called from the controller thread."""

    def on_start(self, progress: LoopProgress) -> None: ...

    def on_trial_finished(self, trial: FrozenTrial, progress: LoopProgress) -> None: ...

    def on_stop(self, reason: str, progress: LoopProgress) -> None: ...
