"""The journal storage's WAITING-trial watermark (core/journal_index.py).

It must answer exactly as optuna's own full scan does, with several writers on one journal
file, and it must not look at trials that can no longer be waiting.
"""

from __future__ import annotations

import random
from pathlib import Path

import optuna
import pytest
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

from kubetune.core import optuna_compat as compat
from kubetune.core.journal_index import WaitingIndexedJournalStorage
from kubetune.core.storage import journal_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)
WAITING = (TrialState.WAITING,)


def _waiting_numbers(storage: JournalStorage, study_id: int) -> list[int]:
    return [t.number for t in storage.get_all_trials(study_id, states=WAITING)]


def test_kubetune_journal_files_use_the_index(tmp_path: Path) -> None:
    assert isinstance(journal_storage(tmp_path / "s.journal"), WaitingIndexedJournalStorage)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_answer_as_optunas_scan_with_two_writers(tmp_path: Path, seed: int) -> None:
    path = str(tmp_path / "study.journal")
    indexed = [WaitingIndexedJournalStorage(JournalFileBackend(path)) for _ in range(2)]
    reference = JournalStorage(JournalFileBackend(path))
    name = "shared"
    optuna.create_study(study_name=name, storage=indexed[0])
    studies = [optuna.load_study(study_name=name, storage=s) for s in indexed]
    study_id = compat.study_id(studies[0])
    rng = random.Random(seed)
    running: list[tuple[optuna.Study, optuna.Trial]] = []
    seen_waiting = 0
    for _ in range(300):
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
