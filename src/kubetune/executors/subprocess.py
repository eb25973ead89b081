"""``executor: {kind: subprocess}``: one ``kubetune trial`` process per trial.

Exactly the contract a pod runs, on this machine: the request (spec included, as data) is a
JSON file, the trial writes its result file atomically and exits with a contract code,
reports travel over HTTP to the controller's :class:`ReportServer`. It pays interpreter
start-up and imports per trial, so it suits trials of seconds or more; its real job is to
prove the out-of-process path the Kubernetes executor takes.

Per trial attempt, in ``<work_dir>/<number>-a<attempt>/``::

    request.json    what the trial runs           result.json   what it gave back
    started         written when its code starts  trial.log     its stdout and stderr

The deadline counts from ``started``; before that a start-up allowance applies.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kubetune.core.executor import (
    Executor,
    ExecutorContext,
    ExecutorEvent,
    FinishedEvent,
)
from kubetune.core.trial import (
    TrialFailure,
    TrialOutcome,
    TrialRequest,
    UnusableRequestError,
    outcome_from_exit,
)
from kubetune.executors.options import check_known, positive_number, whole_number
from kubetune.executors.report_channel import ReportServer

__all__ = ["STARTED_MARKER", "SubprocessExecutor"]

STARTED_MARKER = "started"
_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_OPTIONS = {"python", "function", "startup_allowance_s", "cancel_grace_s", "threads_per_trial"}
_LOG_TAIL = 800


@dataclass
class _Running:
    request: TrialRequest
    process: subprocess.Popen[bytes]
    folder: Path
    spawned: float
    started: float | None = None  # when the trial's code began (the ``started`` marker)
    stop: tuple[TrialFailure, str] | None = None  # why we killed it, if we did
    killed_at: float | None = None


class SubprocessExecutor(Executor):
    """Runs each trial as ``python -m kubetune trial --request R --output O``."""

    kind = "subprocess"

    @classmethod
    def from_context(cls, options: dict[str, Any], context: ExecutorContext) -> Executor:
        check_known("subprocess", options, _OPTIONS)
        startup = positive_number(options, "startup_allowance_s")
        grace = positive_number(options, "cancel_grace_s")
        threads = whole_number(options, "threads_per_trial")
        spec = context.spec
        return cls(
            # Without the study storage: a trial never opens the study (the controller owns
            # every write), and its URL may hold a database password that request files
            # (and pod specs built from them) must not carry.
            spec_data=spec.model_dump(mode="json", exclude_none=True, exclude={"storage"}),
            spec_dir=str(spec.base_dir),
            capacity=spec.limits.parallel,
            work_dir=context.work_dir,
            python=options.get("python") or sys.executable,
            function=options.get("function"),
            startup_allowance_s=120.0 if startup is None else startup,
            cancel_grace_s=10.0 if grace is None else grace,
            threads_per_trial=threads,
        )

    def __init__(
        self,
        *,
        spec_data: dict[str, Any],
        spec_dir: str,
        capacity: int,
        work_dir: Path | None = None,
        python: str = sys.executable,
        function: str | None = None,
        startup_allowance_s: float = 120.0,
        cancel_grace_s: float = 10.0,
        threads_per_trial: int | None = None,
        report_host: str = "127.0.0.1",
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._spec_data = spec_data
        self._spec_dir = spec_dir
        self._capacity = capacity
        self._own_dir = None if work_dir is not None else tempfile.TemporaryDirectory()
        self._work_dir = Path(work_dir or self._own_dir.name)  # type: ignore[union-attr]
        self._python = python
        self._function = function  # "module:attr" trial function instead of the trainer
        self._startup_allowance_s = startup_allowance_s
        self.cancel_grace_s = cancel_grace_s
        threads = threads_per_trial or max(1, (os.cpu_count() or 1) // capacity)
        self._env = {
            **os.environ,
            **{name: str(threads) for name in _THREAD_ENV},
            "PYTHONUNBUFFERED": "1",
        }
        # The trial must import the same kubetune (and the caller's modules) as we do.
        self._env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self._server = ReportServer(secrets.token_urlsafe(24), host=report_host)
        self._running: dict[int, _Running] = {}
        self._recovered: list[FinishedEvent] = []

    @property
    def capacity(self) -> int:
        return self._capacity

    # --- submit --------------------------------------------------------------------------

    def submit(self, request: TrialRequest) -> None:
        if len(self._running) >= self._capacity:
            raise RuntimeError("all slots are busy; the loop must respect capacity")
        folder = self._work_dir / f"{request.number}-a{request.attempt}"
        full = replace(
            request,
            spec=self._spec_data,
            spec_dir=self._spec_dir,
            report=self._server.channel(),
        )
        folder.mkdir(parents=True, exist_ok=True)
        for stale in (STARTED_MARKER, "result.json"):  # from an attempt of a dead controller
            (folder / stale).unlink(missing_ok=True)
        request_path = folder / "request.json"
        request_path.write_text(json.dumps(full.to_dict(), indent=2))
        request_path.chmod(0o600)  # it holds the report token
        command = [
            self._python, "-m", "kubetune", "trial",
            "--request", str(request_path),
            "--output", str(folder / "result.json"),
            "--started-marker", str(folder / STARTED_MARKER),
        ]  # fmt: skip
        if self._function:
            command += ["--function", self._function]
        self._server.expect(request.number, request.attempt)
        with open(folder / "trial.log", "wb") as log:
            process = subprocess.Popen(  # noqa: S603 (a kubetune trial command we built)
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env,
                cwd=str(folder),
                start_new_session=True,  # our signals reach the trial's whole process group
                preexec_fn=_die_with_parent,
            )
        self._running[request.number] = _Running(request, process, folder, time.monotonic())

    # --- events --------------------------------------------------------------------------

    def poll(self, timeout: float) -> list[ExecutorEvent]:
        events: list[ExecutorEvent] = list(self._recovered)
        self._recovered.clear()
        deadline = time.monotonic() + timeout
        while True:
            events.extend(self._drain_reports())
            events.extend(self._check_processes())
            if events or time.monotonic() >= deadline:
                return events
            # Reports arrive on a queue, exits by polling: wait on the queue in short slices.
            # Clamped: on a busy machine the deadline may pass between the check and here.
            wait = max(0.0, min(0.05, deadline - time.monotonic()))
            try:
                first = self._server.events.get(timeout=wait)
            except queue.Empty:
                continue
            events.append(first)

    def _drain_reports(self) -> list[ExecutorEvent]:
        events: list[ExecutorEvent] = []
        while True:
            try:
                event = self._server.events.get_nowait()
            except queue.Empty:
                return events
            if event.number in self._running:
                events.append(event)

    def _check_processes(self) -> list[ExecutorEvent]:
        events: list[ExecutorEvent] = []
        now = time.monotonic()
        for number, run in list(self._running.items()):
            code = run.process.poll()
            if code is not None:
                events.append(FinishedEvent(number, self._finish(run, code)))
                continue
            if run.started is None and (run.folder / STARTED_MARKER).exists():
                run.started = now
            self._enforce_deadline(run, now)
        return events

    def _enforce_deadline(self, run: _Running, now: float) -> None:
        if run.stop is not None:
            if run.killed_at is not None and now - run.killed_at > self.cancel_grace_s:
                _signal_group(run.process, signal.SIGKILL)  # it ignored SIGTERM
            return
        limit = run.request.deadline_s
        if run.started is None:
            if now - run.spawned > self._startup_allowance_s:
                self._stop(
                    run,
                    TrialFailure.INFRASTRUCTURE,
                    f"the trial did not start within {self._startup_allowance_s:g}s",
                )
        elif limit is not None and now - run.started > limit:
            self._stop(
                run,
                TrialFailure.DEADLINE,
                f"trial exceeded its deadline of {limit:g}s and was killed",
            )

    def _stop(self, run: _Running, failure: TrialFailure, message: str) -> None:
        run.stop = (failure, message)
        run.killed_at = time.monotonic()
        self._server.forget(run.request.number)
        _signal_group(run.process, signal.SIGTERM)

    def _finish(self, run: _Running, code: int) -> TrialOutcome:
        del self._running[run.request.number]
        self._server.forget(run.request.number)
        duration = time.monotonic() - (run.started or run.spawned)
        if run.stop is not None:
            failure, message = run.stop
            return TrialOutcome.failed(failure, message, duration_s=duration)
        result = self._read_result(run.folder / "result.json")
        outcome = outcome_from_exit(code, result, _log_tail(run.folder / "trial.log"))
        if result is None:
            outcome.duration_s = duration
        return outcome

    @staticmethod
    def _read_result(path: Path) -> TrialOutcome | None:
        try:
            return TrialOutcome.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RecursionError, UnusableRequestError):
            return None  # unreadable (or nested too deeply to parse): judged by the exit code

    def recover(self, running: Sequence[TrialRequest]) -> list[int]:
        """Trials die with their controller here, but one may have finished first: its
        result file is complete (written atomically), so it is recorded, not run again."""
        adopted = []
        for request in running:
            folder = self._work_dir / f"{request.number}-a{request.attempt}"
            outcome = self._read_result(folder / "result.json")
            if outcome is not None:
                self._recovered.append(FinishedEvent(request.number, outcome))
                adopted.append(request.number)
        return adopted

    # --- answers, cancel, close ----------------------------------------------------------

    def answer(self, number: int, prune: bool) -> None:
        self._server.answer(number, prune)

    def cancel(self, number: int, reason: str) -> None:
        run = self._running.get(number)
        if run is not None and run.stop is None:
            self._stop(run, TrialFailure.CANCELLED, reason)

    def close(self) -> None:
        for run in self._running.values():
            _signal_group(run.process, signal.SIGKILL)
        for run in self._running.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                run.process.wait(timeout=5)
        self._running.clear()
        self._server.close()
        if self._own_dir is not None:
            self._own_dir.cleanup()


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _die_with_parent() -> None:
    # Linux: the trial dies with its controller, as a local worker does; a pod would not.
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _log_tail(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - _LOG_TAIL))
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [line for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-3:])
