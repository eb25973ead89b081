"""Study storages whose "which trials are waiting?" does not re-read the whole study.

``study.ask()`` first looks for an enqueued (WAITING) trial to run, by asking the storage
for every trial in that state. optuna's ``JournalStorage`` answers by scanning every trial
of the study, and its cache in front of a database (``_CachedStorage``) by filtering every
cached trial, so each new trial costs time proportional to the study's size: at 10,000
trials that scan is most of the controller's cost per trial on a journal file, and a fifth
of it on SQLite. optuna's own in-memory storage avoids the scan with a watermark; these
are the same idea for the journal file and the database cache.

It rests on how optuna's storages move trial states: a trial is numbered after every trial
created before it, and once it has left WAITING (to RUNNING, then to a finished state) it
never goes back. So a scan can start at the first trial that was still WAITING (or not yet
read) at the last scan. The answer is the same as the plain scan's, which
``tests/test_waiting_index.py`` checks against optuna's own storages with several writers.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Container

from optuna.storages import BaseStorage
from optuna.storages.journal import BaseJournalBackend, JournalStorage
from optuna.trial import FrozenTrial, TrialState

from kubetune.core import optuna_compat as compat
from kubetune.core.optuna_compat import CachedStorage

_WAITING_ONLY = (TrialState.WAITING,)


def asks_for_waiting(states: Container[TrialState] | None) -> bool:
    """The exact question ``study.ask()`` asks (anything else goes to optuna's scan)."""
    return isinstance(states, tuple) and states == _WAITING_ONLY


def scan_waiting(
    trial_at: Callable[[int], FrozenTrial | None], start: int, stop: int
) -> tuple[list[FrozenTrial], int]:
    """The WAITING trials at positions ``start`` to ``stop - 1``, and where the next scan
    may start: the first position still WAITING or not yet known (``None``)."""
    waiting: list[FrozenTrial] = []
    next_start = stop
    for position in range(start, stop):
        trial = trial_at(position)
        if trial is None or trial.state == TrialState.WAITING:
            next_start = min(next_start, position)
        if trial is not None and trial.state == TrialState.WAITING:
            waiting.append(trial)
    return waiting, next_start


class _WaitingIndex(BaseStorage):
    """Answers ``get_all_trials(states=(WAITING,))`` from a watermark per study; every other
    question, and an unknown study, goes to the storage it is mixed into."""

    def __init__(self) -> None:
        # study id -> position before which no trial can be WAITING
        self._first_maybe_waiting: dict[int, int] = {}

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        waiting = self._scan(study_id) if asks_for_waiting(states) else None
        if waiting is None:
            # the storage this is mixed into (journal or cache) answers: it comes next in the MRO
            return super().get_all_trials(  # type: ignore[safe-super]
                study_id, deepcopy=deepcopy, states=states
            )
        return copy.deepcopy(waiting) if deepcopy else waiting

    def _scan(self, study_id: int) -> list[FrozenTrial] | None:
        """The study's WAITING trials (moving the watermark), or None for an unknown study."""
        raise NotImplementedError

    def _scan_from_watermark(
        self, study_id: int, trial_at: Callable[[int], FrozenTrial | None], stop: int
    ) -> list[FrozenTrial]:
        waiting, self._first_maybe_waiting[study_id] = scan_waiting(
            trial_at, self._first_maybe_waiting.get(study_id, 0), stop
        )
        return waiting


class WaitingIndexedJournalStorage(_WaitingIndex, JournalStorage):
    """``JournalStorage`` that scans for WAITING trials from a watermark per study."""

    def __init__(self, backend: BaseJournalBackend) -> None:
        JournalStorage.__init__(self, backend)
        _WaitingIndex.__init__(self)

    def _scan(self, study_id: int) -> list[FrozenTrial] | None:
        with compat.journal_lock(self):
            compat.journal_sync(self)
            try:
                trial_ids = compat.journal_trial_ids(self, study_id)
            except KeyError:
                return None  # optuna's own scan raises its error for an unknown study
            return self._scan_from_watermark(
                study_id,
                lambda position: compat.journal_trial(self, trial_ids[position]),
                len(trial_ids),
            )


class WaitingIndexedCachedStorage(_WaitingIndex, CachedStorage):
    """optuna's trial cache in front of a database, scanning for WAITING trials from a
    watermark per study (trials are cached by number; a number not read yet stops it)."""

    def __init__(self, backend: compat.RDBStorage) -> None:
        CachedStorage.__init__(self, backend)
        _WaitingIndex.__init__(self)

    def _scan(self, study_id: int) -> list[FrozenTrial] | None:
        compat.cached_refresh(self, study_id)
        with compat.cached_lock(self):
            by_number = compat.cached_trials_by_number(self, study_id)
            return self._scan_from_watermark(
                study_id, by_number.get, max(by_number, default=-1) + 1
            )
