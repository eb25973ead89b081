"""Run one trial's code and turn whatever happens into a :class:`TrialOutcome`.

Shared by the local worker processes, the in-pod ``kubetune trial`` entry point and tests,
so a trial is judged the same way wherever it runs.
"""

from __future__ import annotations

import math
import numbers
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from kubetune.core.coverage_flush import flush_coverage
from kubetune.core.trial import (
    Reporter,
    TrialFailure,
    TrialOutcome,
    TrialPruned,
    TrialRequest,
    TrialStatus,
)
from kubetune.errors import InvalidConfigError

# Trial code: given the request and a reporter, return the objective value or a dict of metrics.
TrialFunction = Callable[[TrialRequest, Reporter], "float | Mapping[str, Any]"]


class _BadReport(Exception):
    """The trial code reported something that is not a finite number."""

    def __init__(self, failure: TrialFailure, message: str) -> None:
        super().__init__(message)
        self.failure = failure


def as_real(value: Any) -> float | None:
    """``value`` as a float if it is a real number (never a bool or a string), else None.

    Too large for a float (an int of 400 digits) is infinity, which the caller rejects.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        return float(value)
    except OverflowError:
        # only huge ints and Fractions overflow; both order against 0
        return math.inf if value > 0 else -math.inf  # type: ignore[operator]


class RecordingReporter:
    """Keeps the learning curve while passing reports on to the real reporter."""

    def __init__(self, inner: Reporter) -> None:
        self._inner = inner
        self.curve: list[tuple[int, float]] = []

    def report(self, step: int, value: float) -> None:
        real = as_real(value)
        if real is None:
            raise _BadReport(
                TrialFailure.ERROR,
                f"reported {type(value).__name__} {value!r} at step {step}, expected a number",
            )
        if not math.isfinite(real):
            # A diverged run: pruning would hide it, completing would pick it.
            raise _BadReport(TrialFailure.NOT_FINITE, f"reported {real} at step {step}")
        self.curve.append((int(step), real))
        self._inner.report(int(step), real)


def run_trial(
    fn: TrialFunction, request: TrialRequest, reporter: Reporter, metric: str
) -> TrialOutcome:
    try:
        return _run_trial(fn, request, reporter, metric)
    finally:
        flush_coverage()  # a worker process may be killed next: keep what coverage measured


def _run_trial(
    fn: TrialFunction, request: TrialRequest, reporter: Reporter, metric: str
) -> TrialOutcome:
    recorder = RecordingReporter(reporter)
    start = time.perf_counter()

    def elapsed() -> float:
        return time.perf_counter() - start

    try:
        result = fn(request, recorder)
    except TrialPruned:
        last = recorder.curve[-1][1] if recorder.curve else None
        return TrialOutcome(
            TrialStatus.PRUNED, value=last, curve=recorder.curve, duration_s=elapsed()
        )
    except _BadReport as exc:
        return TrialOutcome.failed(
            exc.failure, str(exc), curve=recorder.curve, duration_s=elapsed()
        )
    except InvalidConfigError as exc:
        return TrialOutcome.failed(
            TrialFailure.INVALID_CONFIG, str(exc), curve=recorder.curve, duration_s=elapsed()
        )
    except (SystemExit, KeyboardInterrupt) as exc:
        # The trial code itself asked to stop: its own failure, not the runner's (a retry
        # would only do it again). Real signals kill the process and never get here.
        what = f"sys.exit({exc.code!r})" if isinstance(exc, SystemExit) else "KeyboardInterrupt"
        return TrialOutcome.failed(
            TrialFailure.ERROR,
            f"the trial code raised {what}",
            curve=recorder.curve,
            duration_s=elapsed(),
        )
    except Exception as exc:
        tail = traceback.format_exc(limit=-3)
        return TrialOutcome.failed(
            TrialFailure.ERROR,
            f"{type(exc).__name__}: {exc}\n{tail}",
            curve=recorder.curve,
            duration_s=elapsed(),
        )
    return _outcome_from_result(result, metric, recorder.curve, elapsed())


def _outcome_from_result(
    result: Any, metric: str, curve: list[tuple[int, float]], duration: float
) -> TrialOutcome:
    metrics: dict[str, float] = {}
    if isinstance(result, Mapping):
        for key, val in result.items():
            real = as_real(val)
            if real is not None:  # non-numeric extras (paths, notes) are not metrics
                metrics[str(key)] = real
        if metric in result and metric not in metrics:
            found = result[metric]
            return TrialOutcome.failed(
                TrialFailure.ERROR,
                f"metric '{metric}' is {type(found).__name__} {found!r}, expected a number",
                curve=curve,
                duration_s=duration,
            )
        if metric not in metrics:
            return TrialOutcome.failed(
                TrialFailure.ERROR,
                f"the trial returned no metric '{metric}'"
                f" (got: {', '.join(sorted(metrics)) or 'none'})",
                curve=curve,
                duration_s=duration,
            )
        value = metrics[metric]
    else:
        real = as_real(result)
        if real is None:
            return TrialOutcome.failed(
                TrialFailure.ERROR,
                f"the trial returned {type(result).__name__},"
                " expected a number or a dict of metrics",
                curve=curve,
                duration_s=duration,
            )
        value = metrics[metric] = real
    if not math.isfinite(value):
        return TrialOutcome.failed(
            TrialFailure.NOT_FINITE,
            f"objective '{metric}' is {value}",
            metrics=metrics,
            curve=curve,
            duration_s=duration,
        )
    return TrialOutcome(
        TrialStatus.COMPLETED, value=value, metrics=metrics, curve=curve, duration_s=duration
    )
