"""``kubetune worker``: the entry point of a warm worker pod (``mode: worker-pool``).

The pod's process is a small supervisor that starts ``--slots`` worker processes (k =
``trials_per_gpu``, sharing the pod's GPU) and restarts one that dies, telling the
controller (through the restarted process's next request) how the previous one ended, so
its trial is failed by that exit code and retried if it was the infrastructure's fault.

Each worker process loops: ask the controller for a trial (``POST /v1/work`` with the
bearer token), run it in-process exactly as ``kubetune trial`` does (reports go to the
controller, which may prune; the result goes to the object store with one put), tell the
controller it is done, ask again. The trial function is built once per spec, so the
built-in trainer loads its data once per worker process. It exits 0 when the controller
says stop, or when it cannot reach the controller for ``--idle-timeout`` seconds.

The controller's address and token come from the env the pod template sets
(``KUBETUNE_REPORT_URL``, ``KUBETUNE_REPORT_TOKEN``); the token is never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from types import FrameType
from typing import Any

from kubetune.core.trial import ExitCode, TrialFailure, TrialOutcome
from kubetune.errors import StorageError
from kubetune.executors.kubernetes.work_queue import DONE_PATH, LONG_POLL_S, WORK_PATH
from kubetune.executors.report_channel import REPORT_PATH
from kubetune.storage import open_object

__all__ = ["add_worker_parser", "run_worker"]

_RETRY_S = (0.2, 5.0)  # backoff while the controller cannot be reached
_QUICK_DEATH_S = 10.0  # a slot that dies sooner than this is restarted with a backoff


def add_worker_parser(sub: Any) -> None:
    worker = sub.add_parser("worker", help="serve trials from a controller (a warm worker pod)")
    worker.add_argument("--worker", required=True, help="this worker's name (its Job's)")
    worker.add_argument("--slots", type=int, default=1, help="worker processes (trials_per_gpu)")
    worker.add_argument("--function", help="module:function to run instead of the trainer")
    worker.add_argument(
        "--idle-timeout", type=float, default=300.0,
        help="exit once the controller has been unreachable this many seconds",
    )  # fmt: skip
    worker.add_argument("--slot", type=int, help=argparse.SUPPRESS)  # set by the supervisor
    worker.add_argument("--previous-exit", type=int, help=argparse.SUPPRESS)
    worker.set_defaults(handler=run_worker)


def run_worker(args: argparse.Namespace) -> int:
    from kubetune.cli.trial_cmd import ENV_REPORT_TOKEN, ENV_REPORT_URL

    url, token = os.environ.get(ENV_REPORT_URL), os.environ.get(ENV_REPORT_TOKEN)
    if not url or not token or not url.endswith(REPORT_PATH):
        print(
            f"error: kubetune worker needs ${ENV_REPORT_URL} (the controller's .../v1/reports"
            f" URL) and ${ENV_REPORT_TOKEN} in its env",
            file=sys.stderr,
        )
        return ExitCode.USAGE
    if args.slots < 1:
        print("error: --slots must be >= 1", file=sys.stderr)
        return ExitCode.USAGE
    if args.slot is None:
        return _supervise(args)
    base = url[: -len(REPORT_PATH)]
    return _Slot(base, token, f"{args.worker}/{args.slot}", args).serve()


# --- the supervisor (the pod's main process) -------------------------------------------


def _supervise(args: argparse.Namespace) -> int:
    def command(slot: int, previous: int | None) -> list[str]:
        cmd = [sys.executable, "-m", "kubetune", "worker", "--worker", args.worker,
               "--slot", str(slot), "--idle-timeout", f"{args.idle_timeout:g}"]  # fmt: skip
        if args.function:
            cmd += ["--function", args.function]
        if previous is not None:
            cmd += ["--previous-exit", str(previous)]
        return cmd

    # our own interpreter with our own arguments: nothing untrusted is executed
    children = {
        i: (subprocess.Popen(command(i, None)), time.monotonic())  # noqa: S603
        for i in range(args.slots)
    }
    failures = dict.fromkeys(children, 0)

    def forward(signum: int, frame: FrameType | None) -> None:
        for child, _ in children.values():
            child.send_signal(signum)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, forward)
    while children:
        time.sleep(0.1)
        for slot, (child, started) in list(children.items()):
            code = child.poll()
            if code is None:
                continue
            if code == 0:  # told to stop, or the controller is gone: this slot is done
                del children[slot]
                continue
            # a dead slot: restart it; its first request tells the controller the exit code
            quick = time.monotonic() - started < _QUICK_DEATH_S
            failures[slot] = failures[slot] + 1 if quick else 0
            time.sleep(min(_RETRY_S[0] * 2 ** failures[slot], 30.0) if quick else 0)
            print(f"worker slot {slot} exited with code {code}; restarting it", file=sys.stderr)
            children[slot] = (subprocess.Popen(command(slot, code)), time.monotonic())  # noqa: S603
    return 0


# --- one worker process -------------------------------------------------------------------


class _Slot:
    def __init__(self, base: str, token: str, worker: str, args: argparse.Namespace) -> None:
        if urllib.parse.urlsplit(base).scheme not in ("http", "https"):
            raise SystemExit(f"error: the controller URL must be http(s), not {base!r}")
        self._base = base
        self._token = token
        self._worker = worker
        self._function: str | None = args.function
        self._idle_timeout_s: float = args.idle_timeout
        self._previous_exit: int | None = args.previous_exit
        self._cache: dict[str, Any] = {}  # spec -> trial function (data loaded once)

    def serve(self) -> int:
        while True:
            # one id per work request, kept while _call retries it: if the answer is lost,
            # the controller (or its successor) answers the repeat with the same trial
            body = {
                "worker": self._worker,
                "previous_exit": self._previous_exit,
                "request": secrets.token_hex(8),
            }
            answer = self._call(WORK_PATH, body, timeout=LONG_POLL_S + 30)
            if answer is None or answer.get("stop"):
                return 0  # the controller is gone, or done with us
            self._previous_exit = None  # the controller has heard it
            trial = answer.get("trial")
            if isinstance(trial, dict):
                self._run(trial)
                done = {"worker": self._worker, "number": trial["number"],
                        "attempt": trial["attempt"]}  # fmt: skip
                if self._call(DONE_PATH, done, timeout=30) is None:
                    return 0

    def _run(self, trial: dict[str, Any]) -> None:
        # the same code path as `kubetune trial`; imported here, not for `kubetune --help`
        from kubetune.cli.trial_cmd import UnusableRequest, execute_trial, prepare_trial

        try:
            request, spec, fn = prepare_trial(trial["request"], None, self._function, self._cache)
        except UnusableRequest as exc:
            print(f"error: {exc}", file=sys.stderr)
            _write_failure(trial["result"], f"the worker refused the request: {exc}")
            return
        execute_trial(request, spec, fn, trial["result"])

    def _call(self, path: str, body: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """POST to the controller, retrying while it is unreachable; None once it has been
        gone for the idle timeout. A 4xx answer (except 404 for a trial it forgot) means
        this worker is not welcome (wrong token, wrong controller): give up."""
        gone_since: float | None = None
        delay = _RETRY_S[0]
        while True:
            try:
                return self._post(path, body, timeout)
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    return {}
                if 400 <= exc.code < 500:
                    print(f"worker {self._worker}: the controller answered HTTP {exc.code}",
                          file=sys.stderr)  # fmt: skip
                    return None
            except (OSError, ValueError):
                pass  # refused, reset, timed out: it may be restarting
            now = time.monotonic()
            gone_since = gone_since or now
            if now - gone_since > self._idle_timeout_s:
                print(f"worker {self._worker}: no controller for {self._idle_timeout_s:g}s;"
                      " exiting", file=sys.stderr)  # fmt: skip
                return None
            time.sleep(delay)
            delay = min(delay * 2, _RETRY_S[1])

    def _post(self, path: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            self._base + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self._token}"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            answer = json.loads(response.read())
        return answer if isinstance(answer, dict) else {}


def _write_failure(output: str, message: str) -> None:
    outcome = TrialOutcome.failed(TrialFailure.ERROR, message)
    try:
        store, key = open_object(output)
        store.put_bytes(key, json.dumps(outcome.to_dict()).encode())
    except (OSError, StorageError, ValueError) as exc:
        print(f"error: cannot write the trial result to {output}: {exc}", file=sys.stderr)
