"""A trial function whose behaviour the request's params script, for executor tests.

``scripted(request, reporter)`` reads ``params["action"]``:

    complete     return {"value": x, "pid": ..., "start": ..., "end": ...} after ``sleep`` s
    report       report steps 1..``steps`` (value = step / 10), then complete
    raise        raise RuntimeError            invalid      raise InvalidConfigError
    nan          return NaN                    die          SIGKILL its own process
    exit         sys.exit(``code``)            interrupt    raise KeyboardInterrupt
    os_exit      os._exit(``code``)            spawn        start ``sleep 120``, write its pid
                                                            to ``pid_file``, then ``sleep``

It is importable by name (``kubetune.testing.trial_functions:scripted``), so executors that
run ``kubetune trial --function`` in another process run exactly what a local worker runs.
"""

from __future__ import annotations

import math
import os
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
    return {
        "value": float(params.get("x", 0.5)),
        "pid": float(os.getpid()),
        "start": start,
        "end": time.time(),
    }
