"""Resume after the controller is SIGKILLed, and the journal lock that makes it possible."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from kubetune.core.attrs import ATTEMPT, CONTROLLER_DEATHS, FAILURE, MESSAGE, RETRIED, RETRY_OF
from kubetune.core.storage import FlockLock, journal_storage

pytestmark = pytest.mark.reliability  # part of the suite: pytest -m reliability

optuna.logging.set_verbosity(optuna.logging.WARNING)

DRIVER = textwrap.dedent(
    """
    import json, os, sys, time
    import optuna
    import kubetune

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage, log = sys.argv[1], sys.argv[2]

    def objective(params, ctx):
        with open(log, "a") as out:  # one line per execution, written when it starts
            out.write(f"{ctx.number} {os.getpid()} {json.dumps(params)}\\n")
        time.sleep(0.3)
        return params["x"]

    result = kubetune.tune(
        objective,
        {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        strategy="random",
        storage=storage,
        name="resume",
        max_trials=12,
        parallel=2,
        seed=0,
    )
    print("STOP:", result.stop_reason, flush=True)
    """
)


def _executions(log: Path) -> list[tuple[int, int, dict[str, float]]]:
    """(trial number, worker pid, params) per execution logged by the driver."""
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        number, pid, params = line.split(" ", 2)
        out.append((int(number), int(pid), json.loads(params)))
    return out


def _load(path: Path) -> list[FrozenTrial]:
    study = optuna.load_study(study_name="resume", storage=journal_storage(path))
    return study.get_trials(deepcopy=False)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead
    except FileNotFoundError:
        return False


def _children(pid: int) -> set[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        return {int(p) for p in children.read().split()}


def _wait_for(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.slow
def test_resume_after_the_controller_is_sigkilled(tmp_path: Path) -> None:
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    journal = tmp_path / "study.journal"
    logs = [tmp_path / f"run{i}.log" for i in (1, 2, 3)]

    def run_driver(log: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(driver), str(journal), str(log)],
            capture_output=True,
            text=True,
            timeout=120,
        )

    # --- run 1: killed after at least 4 trials completed, with trials running ---------------
    first = subprocess.Popen(
        [sys.executable, str(driver), str(journal), str(logs[0])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def progressed() -> bool:
            if first.poll() is not None:
                raise AssertionError(f"driver exited early: {first.communicate()}")
            if not journal.exists():
                return False
            try:
                states = Counter(t.state for t in _load(journal))
            except KeyError:  # the study is not created yet
                return False
            return states[TrialState.COMPLETE] >= 4 and states[TrialState.RUNNING] >= 1

        _wait_for(progressed, 60, "4 completed trials")
        workers = _children(first.pid)
        assert len(workers) == 2
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        assert first.stdout is not None and first.stderr is not None
        first.stdout.close()
        first.stderr.close()

    # the workers die with their controller (PR_SET_PDEATHSIG)
    _wait_for(lambda: not any(_alive(p) for p in workers), 10, "the workers to die")

    after_kill = {t.number: t for t in _load(journal)}
    completed_1 = {n for n, t in after_kill.items() if t.state == TrialState.COMPLETE}
    running_1 = {n for n, t in after_kill.items() if t.state == TrialState.RUNNING}
    assert len(completed_1) >= 4
    assert running_1, "no trial was running at the kill"
    assert len(completed_1) < 12
    run1 = _executions(logs[0])
    assert run1, "run 1 logged no execution"  # else the subset check below holds vacuously
    assert {pid for _, pid, _ in run1} <= workers

    # --- run 2: resume to the end ------------------------------------------------------------
    second = run_driver(logs[1])
    assert second.returncode == 0, second.stderr
    assert "STOP: max_trials reached" in second.stdout

    trials = {t.number: t for t in _load(journal)}
    states = Counter(t.state for t in trials.values())
    assert states[TrialState.COMPLETE] == 12
    assert states[TrialState.RUNNING] == states[TrialState.WAITING] == 0
    assert states[TrialState.FAIL] == len(running_1)
    assert len(trials) == 12 + len(running_1)

    # completed trials were not executed again
    run2 = _executions(logs[1])
    assert not completed_1 & {n for n, _, _ in run2}
    # one execution per trial number (an attempt is a trial of its own)
    executed = Counter(n for n, _, _ in run1 + run2)
    assert all(count == 1 for count in executed.values()), executed
    for number, trial in trials.items():
        if trial.state == TrialState.COMPLETE:
            assert executed[number] == 1, number

    # trials running at the kill are failed as infrastructure and their params retried
    for number in running_1:
        stale = trials[number]
        assert stale.state == TrialState.FAIL
        assert stale.user_attrs[FAILURE] == "infrastructure"
        assert "controller stopped" in stale.user_attrs[MESSAGE]
        assert stale.user_attrs[RETRIED] is True
        retries = [t for t in trials.values() if t.user_attrs.get(RETRY_OF) == number]
        if not stale.params:
            # killed between ask and suggest (a narrow window, hit under load): nothing ran,
            # so there is no config to retry; a fresh trial took its place
            assert "before this trial started" in stale.user_attrs[MESSAGE]
            assert retries == []
            continue
        assert "while this trial was running" in stale.user_attrs[MESSAGE]
        assert len(retries) == 1
        assert retries[0].params == stale.params
        # issue 7.13: the controller's death is not the config's fault and costs no retry
        assert retries[0].user_attrs[ATTEMPT] == stale.user_attrs.get(ATTEMPT, 1)
        assert retries[0].user_attrs[CONTROLLER_DEATHS] == 1
        assert retries[0].state == TrialState.COMPLETE
        assert retries[0].number > max(after_kill)

    # new configs of the resumed run are fresh draws, not a replay of run 1's
    params_1 = {json.dumps(t.params, sort_keys=True) for t in after_kill.values()}
    fresh_2 = [t for n, t in trials.items() if n not in after_kill and RETRY_OF not in t.user_attrs]
    assert fresh_2
    assert not params_1 & {json.dumps(t.params, sort_keys=True) for t in fresh_2}

    # --- run 3: the study is finished: nothing new runs -----------------------------------------
    third = run_driver(logs[2])
    assert third.returncode == 0, third.stderr
    assert "STOP: max_trials reached" in third.stdout
    assert _executions(logs[2]) == []
    assert len(_load(journal)) == len(trials)


# --- the journal lock ----------------------------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import sys, time
    from kubetune.core.storage import FlockLock

    lock = FlockLock(sys.argv[1])
    lock.acquire()
    print("locked", flush=True)
    time.sleep(120)
    """
)


def _x(params: dict[str, float]) -> float:
    return params["x"]


def test_trial_killed_before_its_params_is_replaced_not_retried(tmp_path: Path) -> None:
    import kubetune

    journal = tmp_path / "study.journal"
    study = optuna.create_study(study_name="resume", storage=journal_storage(journal))
    study.ask()  # a controller died right here: RUNNING, no params yet

    result = kubetune.tune(
        _x,
        {"x": {"type": "float", "low": 0, "high": 1}},
        strategy="random",
        max_trials=3,
        storage=str(journal),
        name="resume",
    )
    assert result.stop_reason.startswith("max_trials")
    trials = _load(journal)
    stale = trials[0]
    assert stale.state == TrialState.FAIL
    assert "before this trial started" in stale.user_attrs[MESSAGE]
    assert not any(RETRY_OF in t.user_attrs for t in trials)
    # not a finished trial: three real trials still ran
    assert [t.state for t in trials[1:]] == [TrialState.COMPLETE] * 3


def _held(path: Path) -> bool:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_flock_lock_is_released_when_its_holder_is_sigkilled(tmp_path: Path) -> None:
    lock_path = tmp_path / "study.journal.flock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        assert _held(lock_path)

        acquired = threading.Event()
        lock = FlockLock(str(lock_path))

        def take() -> None:
            lock.acquire()
            acquired.set()

        waiter = threading.Thread(target=take, daemon=True)
        waiter.start()
        assert not acquired.wait(0.3), "acquired a lock another process holds"

        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        assert acquired.wait(5), "the lock of a killed holder was not released"
        lock.release()
        assert not _held(lock_path)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


def test_flock_lock_excludes_and_releases_within_a_process(tmp_path: Path) -> None:
    path = tmp_path / "x.flock"
    first, second = FlockLock(str(path)), FlockLock(str(path))
    assert first.acquire()
    assert _held(path)
    first.release()
    assert not _held(path)
    assert second.acquire()
    second.release()
    first.release()  # releasing twice is harmless
