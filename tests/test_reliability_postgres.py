"""Reliability: the PostgreSQL study's connections cut mid-study (issue 14.3).

A real ``kubetune run --storage postgresql://...`` runs against the real PostgreSQL server
that ``.ci/run`` installs and starts (``KUBETUNE_TEST_POSTGRES_URL``). While it searches,
this test terminates every server backend of that run, several times, with
``pg_terminate_backend``: what a server restart does to a client's open connections, but
gentle to the other tests sharing the server (only this run's backends, found by their
``application_name``, are cut). The run must reconnect and go on, lose no trial, and end
normally.

Skipped locally without ``KUBETUNE_TEST_POSTGRES_URL``; a failure in CI (``CI`` set).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import kubetune
from kubetune.core.rdb_storage import (
    ReconnectingRDBStorage,
    backoff_from_env,
    is_transient_db_error,
)
from kubetune.errors import StorageError

pytestmark = pytest.mark.reliability

MAX_TRIALS = 14
CUTS = 4

# A trial takes about half a second; its model always answers one class.
TRAINER = textwrap.dedent(
    """
    import json, time
    from pathlib import Path

    import numpy as np


    class Constant:
        def __init__(self, label):
            self.label = label

        def predict(self, X):
            return np.full(len(X), self.label)

        def save(self, directory):
            path = Path(directory) / "constant.json"
            path.write_text(json.dumps({"label": self.label}))
            return [path]


    def load(directory):
        return Constant(json.loads((Path(directory) / "constant.json").read_text())["label"])


    def train(*, params, data, budget, reporter, seed, final, metric):
        time.sleep(0.4)
        model = Constant(int(params["x"] * 3) % 3)
        if not final:
            reporter.report(1, float(np.mean(model.predict(data.X_val) == np.asarray(data.y_val))))
        return model
    """
)


def _import_path() -> str:
    """PYTHONPATH for the child: this kubetune first, whatever the test was started with."""
    here = str(Path(kubetune.__file__).resolve().parents[1])
    inherited = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    return os.pathsep.join([here, *filter(None, inherited)])


def _postgres_url() -> str:
    url = os.environ.get("KUBETUNE_TEST_POSTGRES_URL")
    if url:
        return url
    message = "set KUBETUNE_TEST_POSTGRES_URL to a PostgreSQL database (.ci/run does)"
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {message}")  # never a silent skip in CI
    pytest.skip(message)


def _with_application_name(url: str, name: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}application_name={name}"


def _plain_dsn(url: str) -> str:
    """The SQLAlchemy URL as a libpq URL (``postgresql+psycopg2://`` -> ``postgresql://``)."""
    scheme, rest = url.split("://", 1)
    return f"{scheme.split('+')[0]}://{rest}"


@pytest.fixture
def admin() -> Iterator[object]:
    import psycopg2

    connection = psycopg2.connect(_plain_dsn(_postgres_url()))
    connection.autocommit = True
    try:
        yield connection
    finally:
        connection.close()


def _terminate(admin: object, application_name: str) -> int:
    """Cut every backend of ``application_name``; how many were cut."""
    with admin.cursor() as cursor:  # type: ignore[attr-defined]
        cursor.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = %s AND pid <> pg_backend_pid()",
            (application_name,),
        )
        return int(cursor.fetchone()[0])


def _completed(storage: optuna.storages.BaseStorage, name: str) -> int:
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:  # not created yet
        return 0
    return sum(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False))


@pytest.mark.slow
def _write_experiment(folder: Path, name: str) -> None:
    """The spec (random search over one float, 2 trials at a time) and its custom trainer."""
    (folder / "pg_trainer.py").write_text(TRAINER)
    (folder / "spec.yaml").write_text(
        textwrap.dedent(
            f"""
            name: {name}
            objective: {{metric: val_accuracy, direction: maximize}}
            data: {{source: "sklearn:iris"}}
            trainer: {{kind: custom, function: "pg_trainer:train"}}
            search_space: {{x: {{type: float, low: 0.0, high: 1.0}}}}
            strategy: {{name: random}}
            limits: {{max_trials: {MAX_TRIALS}, parallel: 2, trial_timeout: 1m}}
            """
        )
    )


def test_run_reconnects_after_its_postgres_connections_are_cut(
    admin: object, tmp_path: Path
) -> None:
    name = f"pg-cut-{uuid.uuid4().hex[:8]}"
    application_name = f"kubetune-test-{name}"
    storage = _with_application_name(_postgres_url(), application_name)
    _write_experiment(tmp_path, name)
    run = subprocess.Popen(
        [sys.executable, "-m", "kubetune", "run", "spec.yaml", "--storage", storage],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": _import_path()},
    )
    cut, cuts_done = 0, 0
    # The test watches through connections of its own, which the cuts leave alone: every
    # backend cut is the run's.
    watcher = optuna.storages.RDBStorage(_postgres_url())
    try:
        deadline = time.monotonic() + 240
        # Cut the run's connections each time two more trials have completed: mid-search,
        # with trials in flight and the lease being renewed.
        while run.poll() is None and cuts_done < CUTS:
            assert time.monotonic() < deadline, "the run made no progress"
            if _completed(watcher, name) >= 2 * (cuts_done + 1):
                cut += _terminate(admin, application_name)
                cuts_done += 1
            time.sleep(0.2)
        output, _ = run.communicate(timeout=240)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    text = output.decode(errors="replace")
    assert run.returncode == 0, text
    assert cuts_done == CUTS and cut >= CUTS, (cuts_done, cut)  # the cuts really hit the run
    assert "Traceback" not in text

    study = optuna.load_study(study_name=name, storage=_postgres_url())
    trials = study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    # no trial lost (failed, or left running), none run twice, the numbering unbroken
    assert states.count(TrialState.COMPLETE) == MAX_TRIALS, states
    assert len(trials) == MAX_TRIALS and [t.number for t in trials] == list(range(MAX_TRIALS))
    assert study.best_value == max(t.value for t in trials if t.value is not None)


# --- the retry policy itself (no server needed) ----------------------------------------------


def _operational(message: str) -> Exception:
    from sqlalchemy.exc import OperationalError

    return OperationalError("SELECT 1", {}, Exception(message))


def test_only_dropped_or_refused_connections_count_as_transient() -> None:
    from optuna.exceptions import StorageInternalError

    # optuna wraps what fails inside its session in StorageInternalError
    wrapped = StorageInternalError("An exception is raised during the commit.")
    wrapped.__cause__ = _operational("server closed the connection unexpectedly")
    assert is_transient_db_error(wrapped)
    assert is_transient_db_error(_operational("terminating connection due to administrator"))
    assert is_transient_db_error(_operational("port 5432 failed: Connection refused"))
    assert is_transient_db_error(_operational("FATAL:  the database system is starting up"))
    assert not is_transient_db_error(_operational('password authentication failed for "u"'))
    assert not is_transient_db_error(_operational('database "nope" does not exist'))
    assert not is_transient_db_error(ValueError("server closed the connection"))


def test_retries_are_bounded_and_set_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBETUNE_STORAGE_RETRIES", raising=False)
    assert len(backoff_from_env()) == 6 and sum(backoff_from_env()) < 35
    monkeypatch.setenv("KUBETUNE_STORAGE_RETRIES", "2")
    assert backoff_from_env() == (0.5, 1.0)
    for bad in ("-1", "x", "21"):
        monkeypatch.setenv("KUBETUNE_STORAGE_RETRIES", bad)
        with pytest.raises(StorageError, match="KUBETUNE_STORAGE_RETRIES must be a number"):
            backoff_from_env()


def test_a_call_whose_connection_dropped_is_retried_once_it_is_back(tmp_path: Path) -> None:
    storage = ReconnectingRDBStorage(f"sqlite:///{tmp_path / 'study.db'}")
    storage.backoff_s = (0.0, 0.0)
    real_session, failures = storage.scoped_session, [2]

    def flaky_session() -> object:
        if failures[0]:
            failures[0] -= 1
            raise _operational("server closed the connection unexpectedly")
        return real_session()

    storage.scoped_session = flaky_session  # type: ignore[assignment]
    assert storage.get_all_studies() == []  # two drops ridden out
    failures[0] = 3  # one more than the retries: the error goes up
    with pytest.raises(Exception, match="server closed the connection"):
        storage.get_all_studies()
    failures[0] = 1
    storage.scoped_session = lambda: (_ for _ in ()).throw(  # type: ignore[assignment]
        _operational("password authentication failed")
    )
    with pytest.raises(Exception, match="password authentication failed"):
        storage.get_all_studies()  # not transient: raised at once, no retry


def test_the_private_calls_wrapped_for_optunas_cache_still_exist() -> None:
    """optuna's _CachedStorage reads trials through RDBStorage._get_trials; if an optuna
    upgrade renames it, its reads would no longer be retried: fail here, loudly."""
    from optuna.storages import RDBStorage

    from kubetune.core.rdb_storage import PRIVATE_CALLS

    for name in PRIVATE_CALLS:
        assert callable(getattr(RDBStorage, name, None)), f"optuna has no RDBStorage.{name}"
        assert getattr(ReconnectingRDBStorage, name) is not getattr(RDBStorage, name)


# --- the server itself restarted -------------------------------------------------------------


def _cluster() -> tuple[str, str]:
    """(version, name) of the running PostgreSQL cluster, as Debian's tools name it."""
    if not shutil.which("pg_lsclusters") or not shutil.which("pg_ctlcluster"):
        if os.environ.get("CI"):
            pytest.fail("Debian's postgresql-common tools are needed to restart the server")
        pytest.skip("no pg_ctlcluster here to restart PostgreSQL with")
    listing = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=True)
    for line in listing.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[3] == "online":
            return fields[0], fields[1]
    pytest.fail(f"no online PostgreSQL cluster: {listing.stdout!r}")


@pytest.mark.slow
def test_run_goes_on_after_the_postgres_server_restarts(tmp_path: Path) -> None:
    """The server stopped and started again (``pg_ctlcluster ... restart``) mid-search: every
    connection is gone and, for a moment, connections are refused. The run waits, reconnects
    and finishes with every trial exactly once."""
    version, cluster = _cluster()
    _postgres_url()  # fails under CI when the URL is missing
    name = f"pg-restart-{uuid.uuid4().hex[:8]}"
    _write_experiment(tmp_path, name)
    run = subprocess.Popen(
        [sys.executable, "-m", "kubetune", "run", "spec.yaml", "--storage", _postgres_url()],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": _import_path()},
    )
    restarted = False
    try:
        deadline = time.monotonic() + 240
        while run.poll() is None and not restarted:
            assert time.monotonic() < deadline, "the run made no progress"
            # a fresh connection per look: the restart would break a kept one
            if _completed(optuna.storages.RDBStorage(_postgres_url()), name) >= 4:
                subprocess.run(["pg_ctlcluster", version, cluster, "restart"], check=True)
                restarted = True
            time.sleep(0.2)
        output, _ = run.communicate(timeout=240)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    text = output.decode(errors="replace")
    assert restarted, "the run finished before the restart: nothing was tested"
    assert run.returncode == 0, text
    assert "Traceback" not in text
    study = optuna.load_study(study_name=name, storage=_postgres_url())
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials].count(TrialState.COMPLETE) == MAX_TRIALS, trials
    assert len(trials) == MAX_TRIALS
