"""Stop conditions: unit tests on hand-built snapshots, then end to end through kubetune.tune."""

from __future__ import annotations

import sys
import time
from typing import Any

import cloudpickle
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

import kubetune
from kubetune.core.attrs import FAILURE, FIXED_PARAMS, MESSAGE, RETRIED
from kubetune.core.termination import (
    MaxTrials,
    Patience,
    SpaceExhausted,
    StudySnapshot,
    TargetReached,
    WallTime,
    first_reason,
)
from kubetune.errors import InvalidConfigError

# Objectives defined here run in worker processes that cannot import this test module.
cloudpickle.register_pickle_by_value(sys.modules[__name__])
optuna.logging.set_verbosity(optuna.logging.WARNING)

X = {"x": {"type": "float", "low": 0.0, "high": 1.0}}


def _trial(
    number: int,
    state: TrialState = TrialState.COMPLETE,
    value: float | None = None,
    params: dict[str, Any] | None = None,
    attrs: dict[str, Any] | None = None,
) -> FrozenTrial:
    params = params if params is not None else {"x": number / 100}
    trial = create_trial(
        state=state,
        value=value if state == TrialState.COMPLETE else None,
        params=params,
        distributions={k: FloatDistribution(-1e9, 1e9) for k in params},
        user_attrs=attrs or {},
    )
    trial.number = number
    return trial


def _snap(
    trials: list[FrozenTrial],
    direction: str = "minimize",
    started_at: float | None = None,
    final_failures: int = 0,
) -> StudySnapshot:
    return StudySnapshot(
        trials,
        direction,  # type: ignore[arg-type]
        time.monotonic() if started_at is None else started_at,
        final_failures,
    )


def _values(*values: float) -> list[FrozenTrial]:
    return [_trial(i, value=v) for i, v in enumerate(values)]


# --- unit tests ------------------------------------------------------------------------------


class TestMaxTrials:
    def test_counts_completed_pruned_and_final_failures_only(self) -> None:
        trials = [
            _trial(0, value=1.0),
            _trial(1, TrialState.PRUNED),
            _trial(2, TrialState.FAIL),  # final failure, counted via final_failures
            _trial(3, TrialState.FAIL, attrs={RETRIED: True}),  # retried: not counted
            _trial(4, TrialState.RUNNING),
            _trial(5, TrialState.WAITING),
        ]
        snap = _snap(trials, final_failures=1)
        assert snap.finished_count == 3
        assert MaxTrials(4).check(snap) is None
        reason = MaxTrials(3).check(snap)
        assert reason is not None and reason.startswith("max_trials reached")

    def test_empty_study_goes_on(self) -> None:
        assert MaxTrials(1).check(_snap([])) is None


class TestWallTime:
    def test_not_yet(self) -> None:
        assert WallTime(60).check(_snap([], started_at=time.monotonic())) is None

    def test_elapsed(self) -> None:
        reason = WallTime(5).check(_snap([], started_at=time.monotonic() - 5.5))
        assert reason is not None and reason.startswith("timeout reached")
        assert "5s" in reason


class TestTargetReached:
    def test_minimize(self) -> None:
        snap = _snap(_values(3.0, 0.6, 2.0), "minimize")
        assert TargetReached(0.5).check(snap) is None
        reason = TargetReached(0.6).check(snap)
        assert reason is not None and reason.startswith("target reached")

    def test_maximize(self) -> None:
        snap = _snap(_values(0.2, 0.91, 0.5), "maximize")
        assert TargetReached(0.95).check(snap) is None
        reason = TargetReached(0.9).check(snap)
        assert reason is not None and reason.startswith("target reached")

    def test_direction_matters(self) -> None:
        # best of a maximized study is 0.9 >= 0.5; minimized, the best (0.2) is <= 0.5 too,
        # but a target of 0.1 is only reached when maximizing
        snap_max = _snap(_values(0.2, 0.9), "maximize")
        snap_min = _snap(_values(0.2, 0.9), "minimize")
        assert TargetReached(0.1).check(snap_max) is not None
        assert TargetReached(0.1).check(snap_min) is None

    def test_failed_and_pruned_trials_never_reach_the_target(self) -> None:
        trials = [_trial(0, TrialState.FAIL), _trial(1, TrialState.PRUNED)]
        assert TargetReached(1e9).check(_snap(trials, "minimize")) is None


class TestPatience:
    def test_stops_after_n_without_improvement(self) -> None:
        # best 1.0 at trial 0, then three trials that do not improve (minimize)
        assert Patience(3).check(_snap(_values(1.0, 2.0, 1.5))) is None
        reason = Patience(3).check(_snap(_values(1.0, 2.0, 1.5, 1.0)))
        assert reason is not None and "no improvement in the last 3" in reason

    def test_improvement_resets_the_count(self) -> None:
        # two misses, an improvement (0.5), two misses: only 2 since the best
        assert Patience(3).check(_snap(_values(1.0, 2.0, 3.0, 0.5, 0.9, 0.8))) is None
        assert Patience(3).check(_snap(_values(1.0, 2.0, 3.0, 0.5, 0.9, 0.8, 0.7))) is not None

    def test_maximize(self) -> None:
        assert Patience(2).check(_snap(_values(0.1, 0.5, 0.4), "maximize")) is None
        assert Patience(2).check(_snap(_values(0.1, 0.5, 0.4, 0.3), "maximize")) is not None

    def test_pruned_and_failed_trials_count_as_no_improvement(self) -> None:
        trials = [_trial(0, value=1.0), _trial(1, TrialState.PRUNED), _trial(2, TrialState.FAIL)]
        assert Patience(2).check(_snap(trials)) is not None

    def test_retried_failures_do_not_count(self) -> None:
        # dead workers (failures that are retried) are not trials without improvement
        trials = [
            _trial(0, value=1.0),
            _trial(1, TrialState.FAIL, attrs={RETRIED: True}),
            _trial(2, TrialState.FAIL, attrs={RETRIED: True}),
            _trial(3, value=2.0),
        ]
        assert Patience(2).check(_snap(trials)) is None
        trials.append(_trial(4, TrialState.FAIL, attrs={RETRIED: False}))  # a final one does
        assert Patience(2).check(_snap(trials)) is not None

    def test_running_trials_do_not_count(self) -> None:
        trials = [
            _trial(0, value=1.0),
            _trial(1, TrialState.RUNNING),
            _trial(2, TrialState.RUNNING),
        ]
        assert Patience(2).check(_snap(trials)) is None

    def test_no_completed_trial_never_stops(self) -> None:
        trials = [_trial(i, TrialState.FAIL) for i in range(10)]
        assert Patience(2).check(_snap(trials)) is None

    def test_order_is_by_trial_number(self) -> None:
        # trial 3 (the best) finished last in the list but is the newest by number
        trials = [
            _trial(0, value=5.0),
            _trial(1, value=6.0),
            _trial(2, value=7.0),
            _trial(3, value=1.0),
        ]
        assert Patience(2).check(_snap(list(reversed(trials)))) is None


class TestSpaceExhausted:
    def test_distinct_configs_of_finished_trials(self) -> None:
        trials = [
            _trial(0, value=1.0, params={"a": 1, "b": 2}),
            _trial(1, value=1.0, params={"b": 2, "a": 1}),  # the same config again
            _trial(2, TrialState.PRUNED, params={"a": 2, "b": 2}),
        ]
        assert SpaceExhausted(3).check(_snap(trials)) is None
        reason = SpaceExhausted(2).check(_snap(trials))
        assert reason is not None and "exhausted" in reason and "2 configs" in reason

    def test_retried_and_running_configs_are_not_tried_yet(self) -> None:
        trials = [
            _trial(0, value=1.0, params={"a": 1}),
            _trial(1, TrialState.FAIL, params={"a": 2}, attrs={RETRIED: True}),
            _trial(2, TrialState.RUNNING, params={"a": 3}),
        ]
        assert SpaceExhausted(2).check(_snap(trials)) is None
        trials.append(_trial(3, value=0.5, params={"a": 2}))  # the retry completed
        assert SpaceExhausted(2).check(_snap(trials)) is not None

    def test_a_config_that_failed_for_good_was_tried(self) -> None:
        trials = [
            _trial(0, value=1.0, params={"a": 1}),
            _trial(1, TrialState.FAIL, params={"a": 2}, attrs={RETRIED: False}),
        ]
        assert SpaceExhausted(2).check(_snap(trials)) is not None


def test_first_reason_takes_the_first_condition_that_fires() -> None:
    snap = _snap(_values(0.0, 0.0, 0.0), "minimize")
    assert first_reason([MaxTrials(10), WallTime(60)], snap) is None
    reason = first_reason([MaxTrials(10), TargetReached(0.0), MaxTrials(3)], snap)
    assert reason is not None and reason.startswith("target reached")


# --- end to end through kubetune.tune ----------------------------------------------------------


def _x(params: dict[str, Any]) -> float:
    return float(params["x"])


def _constant(params: dict[str, Any]) -> float:
    return 1.0


def _first_fast_then_slow(params: dict[str, Any], ctx: kubetune.TrialContext) -> float:
    time.sleep(0.2 if ctx.number == 0 else 30)  # trial 1 is surely running at the timeout
    return float(params["x"])


def _sleepy(params: dict[str, Any]) -> float:
    time.sleep(0.2)
    return float(params["x"])


def _finished(result: kubetune.TuneResult) -> list[FrozenTrial]:
    return [t for t in result.study.trials if t.state.is_finished()]


def test_tune_stops_at_max_trials() -> None:
    result = kubetune.tune(_x, X, strategy="random", max_trials=5, parallel=2)
    assert result.stop_reason.startswith("max_trials reached")
    assert len(result.study.trials) == 5
    assert all(t.state == TrialState.COMPLETE for t in result.study.trials)


def test_tune_stops_at_timeout() -> None:
    start = time.monotonic()
    # retries=0: a cancelled trial did not fail, so it is queued again all the same
    result = kubetune.tune(
        _first_fast_then_slow, X, strategy="random", max_trials=None, timeout=2.5, retries=0
    )
    elapsed = time.monotonic() - start
    assert result.stop_reason.startswith("timeout reached")
    completed = [t for t in result.study.trials if t.state == TrialState.COMPLETE]
    assert completed, "some trials completed before the timeout"
    assert elapsed < 15  # the running trial was cancelled, not waited for forever
    for trial in result.study.trials:
        if trial.state == TrialState.FAIL:  # in flight at the timeout: cancelled, queued again
            assert trial.user_attrs[FAILURE] == "cancelled"
            assert trial.user_attrs[MESSAGE].startswith("cancelled: timeout reached")
            assert trial.user_attrs[RETRIED] is True
    waiting = [t for t in result.study.trials if t.state == TrialState.WAITING]
    cancelled = [t for t in result.study.trials if t.state == TrialState.FAIL]
    assert cancelled, "a trial was running when time ran out"
    # queued with the same params, so a resumed run finishes it
    assert [t.system_attrs[FIXED_PARAMS] for t in waiting] == [t.params for t in cancelled]


@pytest.mark.parametrize(("direction", "target"), [("minimize", 0.3), ("maximize", 0.7)])
def test_tune_stops_at_target(direction: str, target: float) -> None:
    result = kubetune.tune(
        _x,
        X,
        strategy="random",
        direction=direction,  # type: ignore[arg-type]
        max_trials=200,
        target=target,
        seed=1,
    )
    assert result.stop_reason.startswith("target reached")
    assert result.best_value is not None
    if direction == "minimize":
        assert result.best_value <= target
    else:
        assert result.best_value >= target
    assert len(result.study.trials) < 200


def test_tune_stops_on_patience() -> None:
    # the first trial sets the best, every later one ties it (no improvement)
    result = kubetune.tune(_constant, X, strategy="random", max_trials=50, patience=3)
    assert result.stop_reason == "no improvement in the last 3 trials"
    assert len(_finished(result)) == 4


def test_tune_stops_when_finite_space_is_exhausted() -> None:
    space = {"a": [1, 2, 3], "b": ["p", "q"]}
    result = kubetune.tune(
        lambda p: p["a"] + (0.5 if p["b"] == "q" else 0.0), space, max_trials=100, parallel=2
    )
    assert result.stop_reason.startswith("search space exhausted")
    configs = {(t.params["a"], t.params["b"]) for t in result.study.trials}
    assert len(configs) == 6
    assert len(result.study.trials) == 6
    assert result.best_params == {"a": 1, "b": "p"}


def _invalid_for_three(params: dict[str, Any]) -> float:
    if params["a"] == 3:
        raise InvalidConfigError("a=3 cannot be trained")
    return float(params["a"])


def test_finite_space_with_invalid_configs_is_exhausted() -> None:
    result = kubetune.tune(_invalid_for_three, {"a": [1, 2, 3, 4]}, max_trials=100)
    assert result.stop_reason.startswith("search space exhausted")
    assert len(result.study.trials) == 4
    failed = [t for t in result.study.trials if t.state == TrialState.FAIL]
    assert [t.params["a"] for t in failed] == [3]
    assert result.best_params == {"a": 1}
