"""One controller per study: the lease on the study refuses a second controller, is taken
over at once from a SIGKILLed one on this host, and after its TTL from anyone else."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

import kubetune
from kubetune.core import optuna_compat as compat
from kubetune.core.attrs import LEASE
from kubetune.core.lease import StudyLease, process_alive, process_start
from kubetune.core.storage import journal_storage, open_storage
from kubetune.errors import KubetuneError, StudyInUseError
from kubetune.testing.tools import postgres_url

pytestmark = pytest.mark.reliability  # part of the suite: pytest -m reliability

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(params=["journal", "sqlite", "postgresql"])
def study(request: pytest.FixtureRequest, tmp_path: Path) -> optuna.Study:
    url = {
        "journal": f"journal:{tmp_path / 'study.journal'}",
        "sqlite": f"sqlite:///{tmp_path / 'study.db'}",
        "postgresql": os.environ.get("KUBETUNE_TEST_POSTGRES_URL"),
    }[request.param]
    if url is None:
        url = postgres_url()  # fails under CI, skips elsewhere
    # a fresh name: a PostgreSQL database outlives the test
    name = f"leased-{uuid.uuid4().hex[:8]}"
    return optuna.create_study(study_name=name, storage=open_storage(url))


def _foreign(study: optuna.Study, **fields: Any) -> None:
    """Write a lease as another controller would have."""
    now = time.time()
    lease = {
        "owner": "other",
        "host": "elsewhere",
        "pid": 4242,
        "pid_start": None,
        "acquired_at": now - 5,
        "renewed_at": now,
        "ttl_s": 60.0,
        **fields,
    }
    compat.set_study_system_attr(study, LEASE, lease)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_acquire_release(study: optuna.Study) -> None:
    lease = StudyLease(study, settle_s=0)
    lease.acquire()
    holder = lease.current()
    assert lease.held and holder is not None
    assert (holder.host, holder.pid) == (socket.gethostname(), os.getpid())
    lease.release()
    assert not lease.held and lease.current() is None


def test_a_second_controller_is_refused_naming_the_holder(study: optuna.Study) -> None:
    first = StudyLease(study, settle_s=0)
    first.acquire()
    with pytest.raises(StudyInUseError) as refused:
        StudyLease(study, settle_s=0).acquire()
    message = str(refused.value)
    assert f"study '{study.study_name}'" in message
    assert f"host {socket.gethostname()}, pid {os.getpid()}, since 20" in message
    assert isinstance(refused.value, KubetuneError)  # the CLI prints `error: ...`, exits 2
    assert first.current() is not None and first.current().owner == first._owner  # type: ignore[union-attr]


def test_a_live_lease_elsewhere_is_refused_whatever_its_pid(study: optuna.Study) -> None:
    _foreign(study, pid=_dead_pid())  # that pid means nothing on another host
    with pytest.raises(StudyInUseError, match="host elsewhere"):
        StudyLease(study, settle_s=0).acquire()


def test_an_expired_lease_is_taken_over(study: optuna.Study) -> None:
    _foreign(study, renewed_at=time.time() - 61, ttl_s=60.0)
    lease = StudyLease(study, settle_s=0)
    lease.acquire()
    assert lease.current().host == socket.gethostname()  # type: ignore[union-attr]


def test_a_dead_holder_on_this_host_is_taken_over_at_once(study: optuna.Study) -> None:
    _foreign(study, host=socket.gethostname(), pid=_dead_pid())
    StudyLease(study, settle_s=0).acquire()


def test_a_reused_pid_is_not_the_holder(study: optuna.Study) -> None:
    # this process's pid, but a different start time: the holder died, the pid was reused
    _foreign(study, host=socket.gethostname(), pid=os.getpid(), pid_start="1")
    StudyLease(study, settle_s=0).acquire()


def test_process_alive() -> None:
    assert process_alive(os.getpid(), process_start(os.getpid()))
    assert not process_alive(_dead_pid())


def test_keep_renews_and_notices_a_takeover(study: optuna.Study) -> None:
    clock = [1000.0]
    lease = StudyLease(study, ttl_s=0.2, settle_s=0, clock=lambda: clock[0])
    lease.acquire()
    clock[0] = 1001.0
    assert lease.keep() is None  # not due yet: no write
    assert lease.current().renewed_at == 1000.0  # type: ignore[union-attr]
    time.sleep(0.06)
    assert lease.keep() is None
    assert lease.current().renewed_at == 1001.0  # type: ignore[union-attr]
    _foreign(study)
    time.sleep(0.06)
    successor = lease.keep()
    assert successor is not None and successor.host == "elsewhere"
    lease.release()  # never clears a successor's lease
    assert lease.current().owner == "other"  # type: ignore[union-attr]


def test_two_controllers_starting_at_once_one_wins(tmp_path: Path) -> None:
    path = tmp_path / "study.journal"
    optuna.create_study(study_name="leased", storage=journal_storage(path))
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def start() -> None:
        study = optuna.load_study(study_name="leased", storage=journal_storage(path))
        lease = StudyLease(study, settle_s=0.3)
        barrier.wait()
        try:
            lease.acquire()
            outcomes.append("won")
        except StudyInUseError:
            outcomes.append("refused")

    threads = [threading.Thread(target=start) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(outcomes) == ["refused", "won"]


# --- real controllers ----------------------------------------------------------------------------

DRIVER = textwrap.dedent(
    """
    import sys, time
    import optuna
    import kubetune

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(params):
        time.sleep(0.2)
        return params["x"]

    result = kubetune.tune(
        objective,
        {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        strategy="random",
        storage=sys.argv[1],
        name="leased",
        max_trials=int(sys.argv[2]),
        parallel=2,
    )
    print("STOP:", result.stop_reason, flush=True)
    """
)


def _x(params: dict[str, float]) -> float:
    return params["x"]


def _tune(journal: Path, max_trials: int) -> kubetune.TuneResult:
    return kubetune.tune(
        _x,
        {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        strategy="random",
        storage=str(journal),
        name="leased",
        max_trials=max_trials,
    )


def _states(journal: Path) -> Counter[TrialState]:
    try:
        study = optuna.load_study(study_name="leased", storage=journal_storage(journal))
    except KeyError:
        return Counter()
    return Counter(t.state for t in study.get_trials(deepcopy=False))


@pytest.mark.slow
def test_second_controller_refused_then_resumes_after_sigkill(tmp_path: Path) -> None:
    journal = tmp_path / "study.journal"
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    first = subprocess.Popen(
        [sys.executable, str(driver), str(journal), "1000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while _states(journal)[TrialState.COMPLETE] < 2:
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first controller made no progress"
            time.sleep(0.05)

        # a second controller on the same study refuses, naming the first
        with pytest.raises(StudyInUseError) as refused:
            _tune(journal, 1000)
        assert f"pid {first.pid}" in str(refused.value)
        assert "study 'leased'" in str(refused.value)
        # ... and it failed none of the first one's running trials
        states = _states(journal)
        assert states[TrialState.FAIL] == 0 and states[TrialState.RUNNING] >= 1
        assert first.poll() is None, "the first controller was disturbed"

        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        for stream in (first.stdout, first.stderr):
            if stream is not None:
                stream.close()

    # the holder is dead on this host: the next controller takes over at once (no TTL wait)
    completed = _states(journal)[TrialState.COMPLETE]
    start = time.monotonic()
    result = _tune(journal, completed + 2)
    assert time.monotonic() - start < 30
    assert result.stop_reason.startswith("max_trials reached")
    states = _states(journal)
    assert states[TrialState.RUNNING] == 0 and states[TrialState.COMPLETE] == completed + 2
    study = optuna.load_study(study_name="leased", storage=journal_storage(journal))
    assert compat.study_system_attrs(study).get(LEASE) is None  # released on exit
