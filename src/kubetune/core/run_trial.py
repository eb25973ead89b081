"""Run one trial's code and turn whatever happens into a :class:`TrialOutcome`.

Shared by the local worker processes, the in-pod ``kubetune trial`` entry point and tests,
so a trial is judged the same way wherever it runs.
"""

from __future__ import annotations

import math
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


class RecordingReporter:
    """Keeps the learning curve while passing reports on to the real reporter."""

    def __init__(self, inner: Reporter) -> None:
        self._inner = inner
        self.curve: list[tuple[int, float]] = []

    def report(self, step: int, value: float) -> None:
        value = float(value)
        self.curve.append((int(step), value))
        self._inner.report(int(step), value)


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
    except InvalidConfigError as exc:
        return TrialOutcome.failed(
            TrialFailure.INVALID_CONFIG, str(exc), curve=recorder.curve, duration_s=elapsed()
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
            try:
                metrics[str(key)] = float(val)
            except (TypeError, ValueError):
                continue  # non-numeric extras (paths, notes) are not metrics
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
        try:
            value = float(result)
        except (TypeError, ValueError):
            return TrialOutcome.failed(
                TrialFailure.ERROR,
                f"the trial returned {type(result).__name__},"
                " expected a number or a dict of metrics",
                curve=curve,
                duration_s=duration,
            )
        metrics[metric] = value
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
