"""The local executor's worker process: ``python -m kubetune.executors.worker FD [PARENT_PID]``.

Started with a fresh interpreter (not fork: a parent that already ran torch or BLAS threads
forks badly; not multiprocessing's spawn: that re-runs the user's ``__main__``). The trial
function arrives cloudpickled over the connection, so closures work too.
"""

from __future__ import annotations

import os
import signal
import sys
from multiprocessing.connection import Connection

import cloudpickle

from kubetune.core.run_trial import TrialFunction, run_trial
from kubetune.core.trial import TrialPruned, TrialRequest


class PipeReporter:
    def __init__(self, conn: Connection, number: int) -> None:
        self._conn = conn
        self._number = number

    def report(self, step: int, value: float) -> None:
        self._conn.send(("report", self._number, step, value))
        kind, prune = self._conn.recv()
        if kind == "answer" and prune:
            raise TrialPruned(f"pruned at step {step}")


def _die_with_parent() -> None:
    # Linux: the kernel kills this worker when the controller dies, so a killed controller
    # leaves no orphan trials behind.
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def serve(conn: Connection) -> None:
    setup = conn.recv()  # ("setup", payload, metric, sys_path)
    sys.path[:0] = [p for p in setup[3] if p not in sys.path]
    try:
        fn: TrialFunction = cloudpickle.loads(setup[1])
    except Exception as exc:
        conn.send(("fatal", f"cannot load the trial function in a worker: {exc!r}"))
        return
    metric = setup[2]
    conn.send(("ready",))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return  # the controller went away
        if msg[0] != "run":
            return
        request = TrialRequest.from_dict(msg[1])
        outcome = run_trial(fn, request, PipeReporter(conn, request.number), metric)
        try:
            conn.send(("done", request.number, outcome.to_dict()))
        except OSError:
            return


def main() -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the controller's to handle
    # The controller may have died before the death signal was armed: then this process was
    # re-parented (to init, or to a subreaper in a container) and must not run.
    controller = int(sys.argv[2]) if len(sys.argv) > 2 else None
    if os.getppid() == 1 or (controller is not None and os.getppid() != controller):
        return
    serve(Connection(int(sys.argv[1])))


if __name__ == "__main__":
    main()
