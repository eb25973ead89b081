"""The embedded default executor: a pool of reused worker processes on this machine.

Workers live for the whole run, so a trial pays neither interpreter start-up nor imports
nor data loading again (the trial function may cache per process). Each worker talks to
the controller over its own socket (see ``worker.py`` for the worker side):

    controller -> worker   ("setup", fn, metric, sys_path) | ("run", request) | ("answer", prune)
    worker -> controller   ("ready",) | ("report", number, step, value) | ("done", number, outcome)

A worker that dies or overruns its deadline is killed and replaced; its trial is reported
as failed (infrastructure failure, or deadline) and the study goes on.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

import cloudpickle

from kubetune.core.executor import (
    Executor,
    ExecutorContext,
    ExecutorEvent,
    FinishedEvent,
    ReportEvent,
)
from kubetune.core.run_trial import TrialFunction
from kubetune.core.trial import TrialFailure, TrialOutcome, TrialRequest, process_death
from kubetune.errors import SpecError
from kubetune.executors.options import check_known, whole_number

# Numeric libraries size their thread pools from these when first imported.
_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
# Extra time a trial's deadline allows a fresh worker to start and load the trial function.
_STARTUP_GRACE_S = 120.0


class WorkerStartupError(RuntimeError):
    """Workers cannot even load the trial function: retrying will not help."""


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    conn: Connection
    ready: bool = False
    number: int | None = None  # the trial running on this worker
    started: float = 0.0
    deadline: float | None = None
    limit_s: float | None = None  # the running trial's time limit


class LocalExecutor(Executor):
    """``executor: {kind: local, threads_per_worker: N}``: ``limits.parallel`` reused workers."""

    kind = "local"

    @classmethod
    def from_context(cls, options: dict[str, Any], context: ExecutorContext) -> LocalExecutor:
        check_known("local", options, {"threads_per_worker"})
        threads = whole_number(options, "threads_per_worker")
        if context.trial_fn is None:
            raise SpecError("executor.kind: the local executor needs a trial function")
        return cls(
            context.trial_fn,
            workers=context.spec.limits.parallel,
            metric=context.spec.objective.metric,
            threads_per_worker=threads,
        )

    def __init__(
        self,
        fn: TrialFunction,
        *,
        workers: int,
        metric: str = "value",
        threads_per_worker: int | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self._payload = cloudpickle.dumps(fn)
        self._metric = metric
        threads = threads_per_worker or max(1, (os.cpu_count() or 1) // workers)
        self._env = {
            **os.environ,
            **{name: str(threads) for name in _THREAD_ENV},
            "PYTHONUNBUFFERED": "1",  # nothing a trial printed is lost when a worker is killed
        }
        self._by_number: dict[int, _Worker] = {}
        self._cancelled: dict[int, tuple[TrialFailure, str]] = {}
        self._startup_failures = 0
        self._workers = [self._spawn() for _ in range(workers)]

    @property
    def capacity(self) -> int:
        return len(self._workers)

    def _spawn(self) -> _Worker:
        ours, theirs = socket.socketpair()
        process = subprocess.Popen(  # noqa: S603 (this interpreter, our own module)
            [
                sys.executable,
                "-m",
                "kubetune.executors.worker",
                str(theirs.fileno()),
                str(os.getpid()),
            ],
            pass_fds=(theirs.fileno(),),
            env=self._env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # killing the group also ends processes a trial started
        )
        theirs.close()
        conn = Connection(ours.detach())
        # The controller's sys.path travels along, so a trial function defined in a module the
        # controller imported from anywhere (a script's folder, pytest's rootdir) imports too.
        conn.send(("setup", self._payload, self._metric, list(sys.path)))
        return _Worker(process=process, conn=conn)

    def submit(self, request: TrialRequest) -> None:
        worker = next((w for w in self._workers if w.number is None), None)
        if worker is None:
            raise RuntimeError("all workers are busy; the loop must respect capacity")
        worker.number = request.number
        worker.limit_s = request.deadline_s
        self._start_clock(worker)
        self._by_number[request.number] = worker
        with contextlib.suppress(OSError):  # a dead worker: poll() reports the trial failed
            worker.conn.send(("run", request.to_dict()))

    def _start_clock(self, worker: _Worker) -> None:
        """A trial's deadline counts from when its worker can run it.

        A fresh worker (at start, or replacing one that died) first pays interpreter start-up
        and loading the trial function; that is not the trial's time, so until the worker is
        ready the limit gets a start-up allowance, and the clock restarts on "ready".
        """
        worker.started = time.monotonic()
        limit = worker.limit_s
        if limit is not None and not worker.ready:
            limit += _STARTUP_GRACE_S
        worker.deadline = worker.started + limit if limit is not None else None

    def answer(self, number: int, prune: bool) -> None:
        worker = self._by_number.get(number)
        if worker is not None:
            with contextlib.suppress(OSError):
                worker.conn.send(("answer", prune))

    def cancel(self, number: int, reason: str) -> None:
        worker = self._by_number.get(number)
        if worker is not None and number not in self._cancelled:  # the first reason stands
            self._cancelled[number] = (TrialFailure.CANCELLED, reason)
            _kill_group(worker.process)

    def poll(self, timeout: float) -> list[ExecutorEvent]:
        events: list[ExecutorEvent] = []
        ready = wait([w.conn for w in self._workers], timeout=self._wait_time(timeout))
        for worker in list(self._workers):
            if worker.conn in ready:
                events.extend(self._drain(worker))
        for worker in list(self._workers):
            if worker.process.poll() is not None:
                events.extend(self._replace_dead(worker))
        events.extend(self._enforce_deadlines())
        return events

    def _wait_time(self, timeout: float) -> float:
        deadlines = [w.deadline for w in self._workers if w.deadline is not None]
        if not deadlines:
            return timeout
        return max(0.0, min(timeout, min(deadlines) - time.monotonic()))

    def _drain(self, worker: _Worker) -> list[ExecutorEvent]:
        events: list[ExecutorEvent] = []
        while True:
            try:
                if not worker.conn.poll():
                    break
                msg = worker.conn.recv()
            except (EOFError, OSError):
                # the socket closed: the process is gone or going; reap it for poll()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    worker.process.wait(timeout=2)
                break
            kind = msg[0]
            if kind == "ready":
                worker.ready = True
                self._startup_failures = 0
                if worker.number is not None:
                    self._start_clock(worker)
            elif kind == "fatal":
                raise WorkerStartupError(msg[1])
            elif kind == "report":
                events.append(ReportEvent(number=msg[1], step=int(msg[2]), value=float(msg[3])))
            elif kind == "done":
                events.append(FinishedEvent(msg[1], TrialOutcome.from_dict(msg[2])))
                self._release(worker)
        return events

    def _release(self, worker: _Worker) -> None:
        if worker.number is not None:
            self._by_number.pop(worker.number, None)
            self._cancelled.pop(worker.number, None)
        worker.number = None
        worker.deadline = None
        worker.limit_s = None

    def _replace_dead(self, worker: _Worker) -> list[ExecutorEvent]:
        events: list[ExecutorEvent] = []
        code = worker.process.returncode
        if worker.number is not None:
            failure, message = self._cancelled.get(worker.number) or process_death(
                code, "worker process"
            )
            outcome = TrialOutcome.failed(
                failure, message, duration_s=time.monotonic() - worker.started
            )
            events.append(FinishedEvent(worker.number, outcome))
            self._release(worker)
        elif not worker.ready:
            self._startup_failures += 1
            if self._startup_failures >= 3:
                raise WorkerStartupError(
                    f"worker processes keep dying at start-up (exit code {code})"
                )
        worker.conn.close()
        self._workers[self._workers.index(worker)] = self._spawn()
        return events

    def _enforce_deadlines(self) -> list[ExecutorEvent]:
        now = time.monotonic()
        events: list[ExecutorEvent] = []
        for worker in list(self._workers):
            if worker.number is None or worker.deadline is None or now < worker.deadline:
                continue
            if worker.ready:
                self._cancelled[worker.number] = (
                    TrialFailure.DEADLINE,
                    f"trial exceeded its deadline of {worker.limit_s:g}s and was killed",
                )
            else:
                self._cancelled[worker.number] = (
                    TrialFailure.INFRASTRUCTURE,
                    f"worker did not start within {_STARTUP_GRACE_S:g}s and was killed",
                )
            _kill_group(worker.process)
            worker.process.wait()
            events.extend(self._replace_dead(worker))
        return events

    def close(self) -> None:
        # Workers hold no state between trials (their output is unbuffered), so they are
        # killed rather than asked to exit: interpreter shutdown would cost ~0.4 s each.
        for worker in self._workers:
            _kill_group(worker.process)
        for worker in self._workers:
            worker.process.wait()
            worker.conn.close()
        self._workers = []


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker and every process its trial started (they share its session)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()
