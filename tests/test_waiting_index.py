"""The WAITING-trial watermark of the journal and database storages (core/waiting_index.py).

It must answer exactly as optuna's own full scan does, with several writers on one study
(a journal file, a SQLite database), and it must not look at trials that can no longer be
waiting.
"""

from __future__ import annotations

import random
from pathlib import Path

import optuna
import pytest
from optuna.storages import BaseStorage
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import FrozenTrial, TrialState

from kubetune.core import optuna_compat as compat
from kubetune.core.storage import database_storage, journal_storage
from kubetune.core.waiting_index import (
    WaitingIndexedCachedStorage,
    WaitingIndexedJournalStorage,
    scan_waiting,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)
WAITING = (TrialState.WAITING,)


def _waiting_numbers(storage: BaseStorage, study_id: int) -> list[int]:
    return [t.number for t in storage.get_all_trials(study_id, states=WAITING)]


def test_kubetune_storages_use_the_index(tmp_path: Path) -> None:
    assert isinstance(journal_storage(tmp_path / "s.journal"), WaitingIndexedJournalStorage)
    database = database_storage(f"sqlite:///{tmp_path / 's.db'}")
    assert isinstance(database, WaitingIndexedCachedStorage)
    assert optuna.storages.get_storage(database) is database  # optuna adds no second cache


def _storages(kind: str, tmp_path: Path) -> tuple[list[BaseStorage], BaseStorage]:
    """Two indexed handles on one study store, and optuna's own storage on it."""
    if kind == "journal":
        path = str(tmp_path / "study.journal")
        indexed: list[BaseStorage] = [
            WaitingIndexedJournalStorage(JournalFileBackend(path)) for _ in range(2)
        ]
        return indexed, JournalStorage(JournalFileBackend(path))
    url = f"sqlite:///{tmp_path / 'study.db'}"
    indexed = [database_storage(url) for _ in range(2)]
    return indexed, optuna.storages.get_storage(optuna.storages.RDBStorage(url))


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
@pytest.mark.parametrize("seed", [0, 1])
def test_same_answer_as_optunas_scan_with_two_writers(tmp_path: Path, kind: str, seed: int) -> None:
    indexed, reference = _storages(kind, tmp_path)
    name = "shared"
    optuna.create_study(study_name=name, storage=indexed[0])
    studies = [optuna.load_study(study_name=name, storage=s) for s in indexed]
    study_id = compat.study_id(studies[0])
    rng = random.Random(seed)
    running: list[tuple[optuna.Study, optuna.Trial]] = []
    seen_waiting = 0
    for _ in range(300 if kind == "journal" else 120):
        study = rng.choice(studies)
        move = rng.random()
        if move < 0.3:
            study.enqueue_trial({"x": rng.random()}, skip_if_exists=False)
        elif move < 0.7 or not running:
            trial = study.ask()
            trial.suggest_float("x", 0.0, 1.0)
            running.append((study, trial))
        else:
            owner, trial = running.pop(rng.randrange(len(running)))
            if rng.random() < 0.8:
                owner.tell(trial, rng.random())
            else:
                owner.tell(trial, state=TrialState.FAIL)
        expected = _waiting_numbers(reference, study_id)
        seen_waiting = max(seen_waiting, len(expected))
        for storage in indexed:
            assert _waiting_numbers(storage, study_id) == expected
    assert seen_waiting >= 2  # the sequence did leave several trials waiting at once


def test_scan_stops_its_watermark_at_a_trial_not_read_yet() -> None:
    done = FrozenTrial.__new__(FrozenTrial)
    done.state = TrialState.COMPLETE
    waiting = FrozenTrial.__new__(FrozenTrial)
    waiting.state = TrialState.WAITING
    trials = {0: done, 1: done, 3: waiting, 4: done}  # number 2: created, not read yet
    found, next_start = scan_waiting(trials.get, 0, 5)
    assert found == [waiting] and next_start == 2
    assert scan_waiting({0: done, 1: done}.get, 0, 2) == ([], 2)


def test_unknown_study_raises_optunas_error(tmp_path: Path) -> None:
    storage = WaitingIndexedJournalStorage(JournalFileBackend(str(tmp_path / "s.journal")))
    study_id = compat.study_id(optuna.create_study(storage=storage))
    with pytest.raises(KeyError):
        storage.get_all_trials(study_id + 1, states=WAITING)


def test_finished_trials_are_not_scanned_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = journal_storage(tmp_path / "s.journal")
    study = optuna.create_study(storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=200)
    study.enqueue_trial({"x": 0.5})
    looked_at: list[int] = []
    real = compat.journal_trial
    monkeypatch.setattr(compat, "journal_trial", lambda s, i: looked_at.append(i) or real(s, i))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=50)
    # each ask scans only past the last waiting trial: about one trial per ask, not the study
    assert len(looked_at) <= 3 * 50
    assert study.trials[200].params == {"x": 0.5}  # the enqueued trial ran first
    assert len(study.trials) == 250  # 50 asks, the first one popping the enqueued trial
