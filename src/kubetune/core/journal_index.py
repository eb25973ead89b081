"""A journal storage whose "which trials are waiting?" does not re-read the whole study.

``study.ask()`` first looks for an enqueued (WAITING) trial to run, by asking the storage
for every trial in that state. optuna's ``JournalStorage`` answers by scanning every trial
of the study, so each new trial costs time proportional to the study's size: at 10,000
trials the scan is most of the controller's cost per trial. optuna's own in-memory storage
avoids the scan with a watermark; this is the same idea for the journal file.

It rests on how optuna's storages move trial states: a trial is created at the end of its
study's list, and once it has left WAITING (to RUNNING, then to a finished state) it never
goes back. So every trial before the first one still WAITING at the last scan can be
skipped. The answer is the same as the plain scan's, which ``tests/test_journal_index.py``
checks against optuna's own storage with several writers on one file.
"""

from __future__ import annotations

import copy
from collections.abc import Container

from optuna.storages.journal import BaseJournalBackend, JournalStorage
from optuna.trial import FrozenTrial, TrialState

from kubetune.core import optuna_compat as compat

_WAITING_ONLY = (TrialState.WAITING,)


class WaitingIndexedJournalStorage(JournalStorage):
    """``JournalStorage`` that scans for WAITING trials from a watermark per study."""

    def __init__(self, backend: BaseJournalBackend) -> None:
        super().__init__(backend)
        # study id -> position in its trial list before which no trial can be WAITING
        self._first_maybe_waiting: dict[int, int] = {}

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        if not isinstance(states, tuple) or states != _WAITING_ONLY:
            return super().get_all_trials(study_id, deepcopy=deepcopy, states=states)
        with compat.journal_lock(self):
            compat.journal_sync(self)
            try:
                trial_ids = compat.journal_trial_ids(self, study_id)
            except KeyError:
                waiting = None
            else:
                waiting = self._waiting(study_id, trial_ids)
        if waiting is None:  # optuna's own scan raises its error for an unknown study
            return super().get_all_trials(study_id, deepcopy=deepcopy, states=states)
        return copy.deepcopy(waiting) if deepcopy else waiting

    def _waiting(self, study_id: int, trial_ids: list[int]) -> list[FrozenTrial]:
        start = self._first_maybe_waiting.get(study_id, 0)
        waiting: list[FrozenTrial] = []
        for position in range(start, len(trial_ids)):
            trial = compat.journal_trial(self, trial_ids[position])
            if trial.state == TrialState.WAITING:
                if not waiting:
                    self._first_maybe_waiting[study_id] = position
                waiting.append(trial)
        if not waiting:
            self._first_maybe_waiting[study_id] = len(trial_ids)
        return waiting
