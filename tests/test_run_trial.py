"""How one trial's return value, reports and exits are judged (``core.run_trial``), the same
wherever it runs. Only real numbers count; every failure carries its reason."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from kubetune.core.run_trial import run_trial
from kubetune.core.trial import Reporter, TrialFailure, TrialRequest, TrialStatus
from kubetune.trainers import NullReporter

pytestmark = pytest.mark.reliability  # part of the suite: pytest -m reliability

REQUEST = TrialRequest(study="s", number=0, params={}, seed=0)


def _judge(result: Any) -> Any:
    return run_trial(lambda request, reporter: result, REQUEST, NullReporter(), "value")


@pytest.mark.parametrize(
    ("result", "expected"),
    [(0.5, 0.5), (3, 3.0), (np.float32(0.25), 0.25), (np.int64(2), 2.0), (Fraction(1, 4), 0.25)],
)
def test_real_numbers_count(result: Any, expected: float) -> None:
    outcome = _judge(result)
    assert outcome.status is TrialStatus.COMPLETED and outcome.value == expected


@pytest.mark.parametrize(
    ("result", "failure", "words"),
    [
        (10**400, TrialFailure.NOT_FINITE, "objective 'value' is inf"),
        (-(10**400), TrialFailure.NOT_FINITE, "is -inf"),
        (math.nan, TrialFailure.NOT_FINITE, "is nan"),
        ("-1e300", TrialFailure.ERROR, "returned str"),
        (True, TrialFailure.ERROR, "returned bool"),
        (None, TrialFailure.ERROR, "returned NoneType"),
        ({"value": "0.9"}, TrialFailure.ERROR, "metric 'value' is str '0.9', expected a number"),
        ({"value": False}, TrialFailure.ERROR, "metric 'value' is bool False"),
        ({"loss": 0.1}, TrialFailure.ERROR, "no metric 'value' (got: loss)"),
    ],
)
def test_anything_else_is_a_failure_with_its_reason(
    result: Any, failure: TrialFailure, words: str
) -> None:
    outcome = _judge(result)
    assert outcome.status is TrialStatus.FAILED and outcome.failure is failure
    assert words in outcome.message


def test_string_extras_are_not_metrics() -> None:
    outcome = _judge({"value": 0.5, "path": "/tmp/model", "flag": True, "n": 3})
    assert outcome.metrics == {"value": 0.5, "n": 3.0}


@pytest.mark.parametrize(
    ("reported", "failure", "words"),
    [
        (math.nan, TrialFailure.NOT_FINITE, "reported nan at step 2"),
        (math.inf, TrialFailure.NOT_FINITE, "reported inf at step 2"),
        ("0.5", TrialFailure.ERROR, "reported str '0.5' at step 2"),
    ],
)
def test_a_bad_report_fails_the_trial(reported: Any, failure: TrialFailure, words: str) -> None:
    def fn(request: TrialRequest, reporter: Reporter) -> float:
        reporter.report(1, 0.5)
        reporter.report(2, reported)
        return 0.9  # a diverged run must not complete on its final score

    outcome = run_trial(fn, REQUEST, NullReporter(), "value")
    assert outcome.failure is failure and words in outcome.message
    assert outcome.curve == [(1, 0.5)]


@pytest.mark.parametrize(
    ("exc", "words"),
    [(SystemExit(3), "sys.exit(3)"), (KeyboardInterrupt(), "KeyboardInterrupt")],
)
def test_trial_code_stopping_itself_is_its_own_failure(exc: BaseException, words: str) -> None:
    def fn(request: TrialRequest, reporter: Reporter) -> float:
        raise exc

    outcome = run_trial(fn, REQUEST, NullReporter(), "value")
    assert outcome.failure is TrialFailure.ERROR and words in outcome.message
