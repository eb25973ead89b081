"""What the loop knows about its study, kept up to date trial by trial.

Stop conditions and progress read counts, the best value, "finished trials since the best"
and the set of configs tried. Recounting them from ``study.get_trials()`` on every event
made each trial cost more than the one before; here the study is read once (at start, to
resume) and every finished trial the loop tells updates the state in O(1) amortised.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from optuna.trial import FrozenTrial, TrialState

from kubetune.core.attrs import RETRIED

__all__ = ["Direction", "StudyState", "config_key", "is_done"]

Direction = Literal["minimize", "maximize"]


def is_done(trial: FrozenTrial) -> bool:
    """Finished for good: a failure that is retried (a dead worker) is not; its retry will be."""
    if trial.state == TrialState.FAIL:
        return not trial.user_attrs.get(RETRIED)
    return trial.state.is_finished()


def config_key(params: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """A hashable identity of a config: the same params in any order give the same key."""
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


class StudyState:
    """Counts and summaries of a study's trials (resumed ones included).

    Built from the trials in storage, then updated with :meth:`started`, :meth:`finished`
    and :meth:`queued` as the loop changes the study.
    """

    def __init__(
        self,
        trials: Iterable[FrozenTrial] = (),
        direction: Direction = "minimize",
        started_at: float | None = None,
        final_failures: int | None = None,
    ) -> None:
        self.direction: Direction = direction
        # time.monotonic() when this run of the loop started
        self.started_at = time.monotonic() if started_at is None else started_at
        self.completed = 0
        self.pruned = 0
        self.failed = 0  # every failed trial, retried or not
        self.final_failures = 0  # failed trials that will not be retried
        self.running = 0
        self.waiting = 0  # queued (retries, enqueued configs): the next asks take them
        self.best_value: float | None = None
        self._best_number = -1  # the first trial (by number) that reached best_value
        self._sign = 1.0 if direction == "maximize" else -1.0
        self._done: list[int] = []  # numbers of trials finished for good, sorted
        self.configs: set[tuple[tuple[str, str], ...]] = set()  # configs finished for good
        for trial in trials:
            self._add(trial)
        if final_failures is not None:  # given by callers that count them their own way
            self.final_failures = final_failures

    # --- reads ---------------------------------------------------------------------------

    @property
    def finished_count(self) -> int:
        """Trials finished for good: completed, pruned, and failures not retried."""
        return self.completed + self.pruned + self.final_failures

    def since_best(self) -> int | None:
        """Trials finished for good after (by number) the best one; None without a best.

        The best is the first trial, in number order, to reach the best value: a later tie
        is no improvement, as in a scan by number.
        """
        if self.best_value is None:
            return None
        return len(self._done) - bisect.bisect_right(self._done, self._best_number)

    # --- updates -------------------------------------------------------------------------

    def started(self, *, from_queue: bool) -> None:
        self.running += 1
        if from_queue:
            self.waiting = max(0, self.waiting - 1)

    def queued(self) -> None:
        self.waiting += 1

    def finished(self, trial: FrozenTrial) -> None:
        """A trial this run had running is finished (``trial`` as storage now has it)."""
        self.running = max(0, self.running - 1)
        self._add(trial)

    def _add(self, trial: FrozenTrial) -> None:
        state = trial.state
        if state == TrialState.RUNNING:
            self.running += 1
            return
        if state == TrialState.WAITING:
            self.waiting += 1
            return
        if state == TrialState.COMPLETE:
            self.completed += 1
            if trial.value is not None:
                self._offer_best(trial.value, trial.number)
        elif state == TrialState.PRUNED:
            self.pruned += 1
        elif state == TrialState.FAIL:
            self.failed += 1
            if trial.user_attrs.get(RETRIED):
                return  # not finished for good: its retry will be
            self.final_failures += 1
        else:
            return
        self.configs.add(config_key(trial.params))
        # trials mostly finish in number order: append, else insert in place
        if not self._done or trial.number > self._done[-1]:
            self._done.append(trial.number)
        else:
            bisect.insort(self._done, trial.number)

    def _offer_best(self, value: float, number: int) -> None:
        best = self.best_value
        if (
            best is None
            or self._sign * value > self._sign * best
            or (value == best and number < self._best_number)
        ):
            self.best_value, self._best_number = value, number
