"""A trial function whose behaviour the request's params script, for executor tests.

``scripted(request, reporter)`` reads ``params["action"]``:

    complete     return {"value": x, "pid": ..., "start": ..., "end": ...} after ``sleep`` s
    report       report steps 1..``steps`` (value = step / 10), then complete
    raise        raise RuntimeError            invalid      raise InvalidConfigError
    nan          return NaN                    die          SIGKILL its own process
    exit         sys.exit(``code``)            interrupt    raise KeyboardInterrupt
    os_exit      os._exit(``code``)            spawn        start ``sleep 120``, write its pid
                                                            to ``pid_file``, then ``sleep``
    inf, neg_inf return +/-infinity            huge_int     return 10**400 (past any float)
    huge_float   return 1e308 (finite)          string       return the string "-1"
    exit_N       sys.exit(N)                   os_exit_N    os._exit(N)
    hang         sleep ten minutes (past any deadline a test sets)
    await_kill   write its pid to ``$KUBETUNE_SCRIPTED_PID_DIR/<number>-a<attempt>.pid``,
                 then sleep until someone kills it (a worker killed from outside)
    oom          move its own process into the memory cgroup ``$KUBETUNE_SCRIPTED_CGROUP``
                 (its ``cgroup.procs`` file) and allocate until the kernel's OOM killer ends it
    memory_error cap its own address space (RLIMIT_AS) and allocate past it: MemoryError

With ``say``, it first prints that line to stderr (a training log, as its pod's log shows).

It is importable by name (``kubetune.testing.trial_functions:scripted``), so executors that
run ``kubetune trial --function`` in another process run exactly what a local worker runs.
"""

from __future__ import annotations

import math
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from kubetune.core.trial import Reporter, TrialRequest
from kubetune.errors import InvalidConfigError

__all__ = ["SCRIPTED", "scripted"]

SCRIPTED = "kubetune.testing.trial_functions:scripted"


def scripted(request: TrialRequest, reporter: Reporter) -> dict[str, Any] | float:
    params = request.params
    action = params.get("action", "complete")
    start = time.time()
    if "say" in params:
        print(params["say"], file=sys.stderr, flush=True)
    if action == "report":
        for step in range(1, int(params.get("steps", 3)) + 1):
            time.sleep(float(params.get("step_sleep", 0.0)))
            reporter.report(step, step / 10)
    if action == "spawn":
        child = subprocess.Popen(["sleep", "120"])
        Path(params["pid_file"]).write_text(str(child.pid))
    time.sleep(float(params.get("sleep", 0.0)))
    if action == "raise":
        raise RuntimeError("scripted failure")
    if action == "invalid":
        raise InvalidConfigError("scripted invalid config")
    if action == "nan":
        return math.nan
    if action == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "exit":
        sys.exit(int(params.get("code", 1)))
    if action == "os_exit":
        os._exit(int(params.get("code", 7)))
    if action == "interrupt":
        raise KeyboardInterrupt
    if action.startswith("exit_"):
        sys.exit(int(action.removeprefix("exit_")))
    if action.startswith("os_exit_"):
        os._exit(int(action.removeprefix("os_exit_")))
    if action in _RETURNS:
        return _RETURNS[action]
    if action == "hang":
        time.sleep(600)
    if action == "await_kill":
        folder = Path(os.environ["KUBETUNE_SCRIPTED_PID_DIR"])
        (folder / f"{request.number}-a{request.attempt}.pid").write_text(str(os.getpid()))
        time.sleep(600)
    if action == "oom":
        Path(os.environ["KUBETUNE_SCRIPTED_CGROUP"], "cgroup.procs").write_text(str(os.getpid()))
        _allocate(1 << 30)
    if action == "memory_error":
        _allocate_past_address_space_limit(256 << 20)
    return {
        "value": float(params.get("x", 0.5)),
        "pid": float(os.getpid()),
        "start": start,
        "end": time.time(),
    }


# What some actions return as the trial's result, as trial code might.
_RETURNS: dict[str, Any] = {
    "inf": math.inf,
    "neg_inf": -math.inf,
    "huge_int": 10**400,
    "huge_float": 1e308,
    "string": "-1",
}


def _allocate(total: int) -> list[bytes]:
    """Touch ``total`` bytes in 16 MiB blocks (every page written, so every page counts)."""
    block = 16 << 20
    return [b"\x01" * block for _ in range(total // block)]


def _allocate_past_address_space_limit(headroom: int) -> None:
    """Cap this process's address space ``headroom`` bytes above what it uses now, allocate
    past the cap (a MemoryError), and lift the cap again, so a reused worker stays usable."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as fh:
        used = int(fh.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (used + headroom, hard))
    try:
        _allocate(4 * headroom)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
