"""Every use of optuna's private API, in one place.

kubetune needs a few things optuna's public API does not offer: writing attributes of a
trial by number (the loop fails trials it holds no ``Trial`` object for), study system
attributes (the controller lease), a ``Trial`` handle for a trial adopted from storage, and
a distribution's membership test. They all go through here, and
``tests/test_optuna_compat.py`` checks each one against the installed optuna, so an upgrade
that changes them fails there with a clear message instead of somewhere in the loop.
(pyproject caps optuna below the next major version.)
"""

from __future__ import annotations

import threading
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage, InMemoryStorage, RDBStorage
from optuna.storages._cached_storage import _CachedStorage as CachedStorage
from optuna.storages.journal import JournalStorage
from optuna.storages.journal._file import BaseJournalFileLock
from optuna.trial import FrozenTrial

__all__ = [
    "BaseJournalFileLock",
    "CachedStorage",
    "RDBStorage",
    "cached_lock",
    "cached_refresh",
    "cached_trials_by_number",
    "distribution_contains",
    "is_in_memory",
    "journal_lock",
    "journal_sync",
    "journal_trial",
    "journal_trial_ids",
    "live_trial",
    "set_study_system_attr",
    "set_trial_system_attr",
    "set_trial_user_attr",
    "set_user_attr_before_trial",
    "storage_of",
    "study_id",
    "study_system_attrs",
    "trial_id",
    "trial_id_of_number",
]


def storage_of(study: optuna.Study) -> BaseStorage:
    return study._storage


def study_id(study: optuna.Study) -> int:
    return study._study_id


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    """The storage id of a trial (unique across studies, unlike its number)."""
    return trial._trial_id


def trial_id_of_number(study: optuna.Study, number: int) -> int:
    return storage_of(study).get_trial_id_from_study_id_trial_number(study_id(study), number)


def live_trial(study: optuna.Study, trial_id: int) -> optuna.Trial:
    """A ``Trial`` handle (report, should_prune, tell) on a RUNNING trial from storage."""
    return optuna.Trial(study, trial_id)


def set_trial_user_attr(study: optuna.Study, trial_id: int, key: str, value: Any) -> None:
    storage_of(study).set_trial_user_attr(trial_id, key, value)


def set_user_attr_before_trial(
    study: optuna.Study, trial: FrozenTrial, key: str, value: Any
) -> None:
    """From a sampler's ``before_trial``: a user attr stored *and* seen by the live trial.

    optuna hands ``before_trial`` the live ``Trial``'s cached ``FrozenTrial``, so setting it
    there too makes ``trial.user_attrs`` show it without another storage read.
    """
    set_trial_user_attr(study, trial_id(trial), key, value)
    trial.set_user_attr(key, value)


def set_trial_system_attr(study: optuna.Study, trial_id: int, key: str, value: Any) -> None:
    storage_of(study).set_trial_system_attr(trial_id, key, value)


def study_system_attrs(study: optuna.Study) -> dict[str, Any]:
    """The study's system attrs, read fresh from storage (another process may write them)."""
    return storage_of(study).get_study_system_attrs(study_id(study))


def set_study_system_attr(study: optuna.Study, key: str, value: Any) -> None:
    storage_of(study).set_study_system_attr(study_id(study), key, value)


def is_in_memory(study: optuna.Study) -> bool:
    """True when no other process can reach the study (optuna's InMemoryStorage)."""
    return isinstance(storage_of(study), InMemoryStorage)


def distribution_contains(distribution: BaseDistribution, value: Any) -> bool:
    """Whether ``value`` (external representation) lies in ``distribution``."""
    try:
        return bool(distribution._contains(distribution.to_internal_repr(value)))
    except (ValueError, TypeError):
        return False


# The storages' own state, for the WAITING-trial index in core/waiting_index.py.


def journal_lock(storage: JournalStorage) -> threading.Lock:
    """The lock every public ``JournalStorage`` method holds while it reads or writes."""
    lock: threading.Lock = storage._thread_lock
    return lock


def journal_sync(storage: JournalStorage) -> None:
    """Replay the records other processes appended since the last read (hold the lock)."""
    storage._sync_with_backend()


def journal_trial_ids(storage: JournalStorage, study_id: int) -> list[int]:
    """The study's trial ids in creation order (raises ``KeyError`` for an unknown study)."""
    ids: list[int] = storage._replay_result._study_id_to_trial_ids[study_id]
    return ids


def journal_trial(storage: JournalStorage, trial_id: int) -> FrozenTrial:
    """The replayed trial itself, not a copy: read it, never change it."""
    trial: FrozenTrial = storage._replay_result._trials[trial_id]
    return trial


def cached_refresh(storage: CachedStorage, study_id: int) -> None:
    """Read the trials created or changed since the last read into optuna's cache."""
    storage._read_trials_from_remote_storage(study_id)


def cached_lock(storage: CachedStorage) -> threading.Lock:
    """The lock the cache holds while it reads or changes its trials."""
    lock: threading.Lock = storage._lock
    return lock


def cached_trials_by_number(storage: CachedStorage, study_id: int) -> dict[int, FrozenTrial]:
    """The cache's own trials of a study by number (hold the lock; never change them)."""
    trials: dict[int, FrozenTrial] = storage._studies[study_id].trials
    return trials
