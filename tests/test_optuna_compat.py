"""Every private optuna API kubetune uses (all in kubetune.core.optuna_compat) still works.

If one of these fails after an optuna upgrade, fix ``kubetune/core/optuna_compat.py``: the
rest of kubetune only reaches optuna's internals through it.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from kubetune.core import optuna_compat as compat
from kubetune.core.storage import open_storage
from kubetune.testing.tools import postgres_url

optuna.logging.set_verbosity(optuna.logging.WARNING)

HINT = "optuna's private API changed: update kubetune/core/optuna_compat.py"


@pytest.fixture(params=["memory", "journal", "sqlite", "postgresql"])
def study(request: pytest.FixtureRequest, tmp_path: Path) -> optuna.Study:
    url = {
        "memory": None,
        "journal": f"journal:{tmp_path / 'study.journal'}",
        "sqlite": f"sqlite:///{tmp_path / 'study.db'}",
        "postgresql": os.environ.get("KUBETUNE_TEST_POSTGRES_URL"),
    }[request.param]
    if request.param == "postgresql" and url is None:
        url = postgres_url()  # fails under CI, skips elsewhere
    # a fresh name: a PostgreSQL database outlives the test
    name = f"compat-{uuid.uuid4().hex[:8]}"
    return optuna.create_study(study_name=name, storage=open_storage(url))


def test_private_attributes_exist(study: optuna.Study) -> None:
    trial = study.ask()
    for obj, name in ((study, "_storage"), (study, "_study_id"), (trial, "_trial_id")):
        assert hasattr(obj, name), f"{type(obj).__name__}.{name} is gone: {HINT}"
    frozen = study.get_trials(deepcopy=False)[0]
    assert hasattr(frozen, "_trial_id"), f"FrozenTrial._trial_id is gone: {HINT}"
    assert isinstance(compat.storage_of(study), optuna.storages.BaseStorage), HINT
    assert isinstance(compat.study_id(study), int), HINT
    assert compat.trial_id(trial) == compat.trial_id(frozen), HINT


def test_trial_attrs_by_number(study: optuna.Study) -> None:
    study.ask()
    second = study.ask()
    trial_id = compat.trial_id_of_number(study, 1)
    assert trial_id == compat.trial_id(second), HINT
    compat.set_trial_user_attr(study, trial_id, "u", {"a": 1})
    compat.set_trial_system_attr(study, trial_id, "s", 7)
    stored = study.get_trials(deepcopy=False)[1]
    assert stored.user_attrs["u"] == {"a": 1}, HINT
    assert stored.system_attrs["s"] == 7, HINT


def test_study_system_attrs_round_trip(study: optuna.Study) -> None:
    assert compat.study_system_attrs(study).get("k") is None
    compat.set_study_system_attr(study, "k", {"owner": "x", "pid": 1})
    assert compat.study_system_attrs(study)["k"] == {"owner": "x", "pid": 1}, HINT
    compat.set_study_system_attr(study, "k", None)  # how a lease is cleared
    assert compat.study_system_attrs(study)["k"] is None, HINT
    # another handle on the same storage sees the write (what the lease relies on)
    if not compat.is_in_memory(study):
        other = optuna.load_study(study_name=study.study_name, storage=compat.storage_of(study))
        compat.set_study_system_attr(other, "k", "from another handle")
        assert compat.study_system_attrs(study)["k"] == "from another handle", HINT


def test_live_trial_handle_reports_and_tells(study: optuna.Study) -> None:
    frozen_id = compat.trial_id(study.ask())
    trial = compat.live_trial(study, frozen_id)
    trial.report(0.5, 1)
    assert not trial.should_prune()
    study.tell(trial, 1.0)
    stored = study.get_trials(deepcopy=False)[0]
    assert stored.state == TrialState.COMPLETE and stored.intermediate_values == {1: 0.5}, HINT


def test_is_in_memory(study: optuna.Study) -> None:
    expected = isinstance(study._storage, optuna.storages.InMemoryStorage)
    assert compat.is_in_memory(study) is expected


@pytest.mark.parametrize(
    ("distribution", "inside", "outside"),
    [
        (FloatDistribution(0.0, 1.0), 0.5, 2.0),
        (IntDistribution(1, 4), 3, 9),
        (CategoricalDistribution(["a", "b"]), "b", "z"),
    ],
)
def test_distribution_contains(distribution: object, inside: object, outside: object) -> None:
    assert compat.distribution_contains(distribution, inside), HINT  # type: ignore[arg-type]
    assert not compat.distribution_contains(distribution, outside), HINT  # type: ignore[arg-type]


def test_journal_file_lock_base_class() -> None:
    lock = compat.BaseJournalFileLock
    assert {"acquire", "release"} <= set(dir(lock)), HINT


def test_a_user_attr_set_before_trial_is_seen_by_the_live_trial(study: optuna.Study) -> None:
    class Marking(optuna.samplers.RandomSampler):
        def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            compat.set_user_attr_before_trial(study, trial, "kubetune:parent", 3)

    study.sampler = Marking(seed=0)
    trial = study.ask()
    assert trial.user_attrs.get("kubetune:parent") == 3, HINT  # the live handle sees it
    assert study.get_trials(deepcopy=False)[0].user_attrs["kubetune:parent"] == 3, HINT


def test_journal_replay_accessors(tmp_path: Path) -> None:
    """The journal internals core/waiting_index.py reads: lock, sync, trial ids, trials."""
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    storage = JournalStorage(JournalFileBackend(str(tmp_path / "study.journal")))
    study = optuna.create_study(storage=storage)
    study.enqueue_trial({"x": 1.0})
    study.ask()
    study.ask()
    with compat.journal_lock(storage):
        compat.journal_sync(storage)
        ids = compat.journal_trial_ids(storage, compat.study_id(study))
        states = [compat.journal_trial(storage, i).state for i in ids]
    assert len(ids) == 2, HINT
    assert states == [TrialState.RUNNING, TrialState.RUNNING], HINT
    with pytest.raises(KeyError):
        compat.journal_trial_ids(storage, compat.study_id(study) + 1)


def test_cached_storage_accessors(tmp_path: Path) -> None:
    """The database cache internals core/waiting_index.py reads: refresh, lock, trials."""
    backend = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}")
    cache = compat.CachedStorage(backend)
    study = optuna.create_study(storage=cache)
    assert compat.storage_of(study) is cache, HINT  # optuna does not wrap a cache again
    study.enqueue_trial({"x": 1.0})
    study.ask()
    # a second writer's trial, which this cache has not read yet
    optuna.load_study(study_name=study.study_name, storage=backend).enqueue_trial({"x": 2.0})
    compat.cached_refresh(cache, compat.study_id(study))
    with compat.cached_lock(cache):
        trials = compat.cached_trials_by_number(cache, compat.study_id(study))
        states = {number: trial.state for number, trial in trials.items()}
    assert states == {0: TrialState.RUNNING, 1: TrialState.WAITING}, HINT
