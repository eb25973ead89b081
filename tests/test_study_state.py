"""The incrementally kept StudyState agrees with a full recount, whatever the finishing order;
and StopReason is a message string that carries its kind."""

from __future__ import annotations

import pickle
import random
from typing import Any

import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from kubetune.core.attrs import RETRIED
from kubetune.core.stop_reason import INTERRUPTED, StopKind, StopReason
from kubetune.core.study_state import StudyState, config_key
from kubetune.report import RunSummary


def _trial(number: int, rng: random.Random) -> FrozenTrial:
    state = rng.choice(
        [TrialState.COMPLETE] * 5 + [TrialState.PRUNED, TrialState.FAIL, TrialState.FAIL]
    )
    attrs: dict[str, Any] = {}
    if state == TrialState.FAIL:
        attrs[RETRIED] = rng.random() < 0.5
    params = {"a": rng.randint(0, 6), "b": rng.choice(["p", "q"])}
    trial = _make(state, params, attrs, rng)
    trial.number = number
    return trial


def _make(
    state: TrialState, params: dict[str, Any], attrs: dict[str, Any], rng: random.Random
) -> FrozenTrial:
    return create_trial(
        state=state,
        value=float(rng.randint(0, 20)) if state == TrialState.COMPLETE else None,
        params=params,
        distributions={
            "a": CategoricalDistribution(list(range(7))),
            "b": CategoricalDistribution(["p", "q"]),
        },
        user_attrs=attrs,
    )


def _recount(trials: list[FrozenTrial], direction: str) -> dict[str, Any]:
    """What the loop computed from the full trial list before the state was incremental."""

    def done(t: FrozenTrial) -> bool:
        if t.state == TrialState.FAIL:
            return not t.user_attrs.get(RETRIED)
        return t.state.is_finished()

    sign = 1.0 if direction == "maximize" else -1.0
    best, since = None, 0
    for t in sorted((t for t in trials if done(t)), key=lambda t: t.number):
        if t.state == TrialState.COMPLETE and (best is None or sign * t.value > sign * best):
            best, since = t.value, 0
        else:
            since += 1
    values = [t.value for t in trials if t.state == TrialState.COMPLETE]
    return {
        "completed": sum(t.state == TrialState.COMPLETE for t in trials),
        "pruned": sum(t.state == TrialState.PRUNED for t in trials),
        "failed": sum(t.state == TrialState.FAIL for t in trials),
        "final_failures": sum(t.state == TrialState.FAIL and done(t) for t in trials),
        "best_value": (max(values) if direction == "maximize" else min(values)) if values else None,
        "since_best": since if best is not None else None,
        "configs": {config_key(t.params) for t in trials if done(t)},
    }


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
@pytest.mark.parametrize("seed", range(20))
def test_incremental_state_equals_a_recount(direction: str, seed: int) -> None:
    rng = random.Random(seed)
    trials = [_trial(n, rng) for n in range(rng.randint(0, 60))]
    split = rng.randint(0, len(trials))
    # some trials were in storage at start (resumed), the rest finish in a shuffled order
    resumed, later = trials[:split], trials[split:]
    rng.shuffle(later)
    state = StudyState(resumed, direction, 0.0)  # type: ignore[arg-type]
    for trial in later:
        state.started(from_queue=False)
        state.finished(trial)
    expected = _recount(trials, direction)
    got = {
        "completed": state.completed,
        "pruned": state.pruned,
        "failed": state.failed,
        "final_failures": state.final_failures,
        "best_value": state.best_value,
        "since_best": state.since_best(),
        "configs": state.configs,
    }
    assert got == expected
    assert state.running == 0
    assert state.finished_count == expected["completed"] + expected["pruned"] + len(
        [t for t in trials if t.state == TrialState.FAIL and not t.user_attrs.get(RETRIED)]
    )


def test_running_and_waiting_are_counted() -> None:
    rng = random.Random(0)
    running = _make(TrialState.RUNNING, {"a": 1, "b": "p"}, {}, rng)
    waiting = _make(TrialState.WAITING, {"a": 1, "b": "p"}, {}, rng)
    state = StudyState([running, waiting])
    assert (state.running, state.waiting, state.finished_count) == (1, 1, 0)
    state.started(from_queue=True)
    assert (state.running, state.waiting) == (2, 0)
    state.queued()
    assert state.waiting == 1


def test_a_tie_is_no_improvement() -> None:
    rng = random.Random(0)
    trials = []
    for number, value in enumerate([1.0, 1.0, 1.0]):
        trial = _make(TrialState.COMPLETE, {"a": number, "b": "p"}, {}, rng)
        trial.value, trial.number = value, number
        trials.append(trial)
    state = StudyState()
    for trial in reversed(trials):  # the first (by number) to reach 1.0 is the best
        state.finished(trial)
    assert state.since_best() == 2


# --- StopReason --------------------------------------------------------------------------------


def test_stop_reason_is_its_message_with_a_kind() -> None:
    reason = StopReason(StopKind.TIMEOUT, "timeout reached (5s)")
    assert reason == "timeout reached (5s)" and str(reason) == "timeout reached (5s)"
    assert type(str(reason)) is str and reason.message == "timeout reached (5s)"
    assert reason.kind is StopKind.TIMEOUT
    assert f"cancelled: {reason}" == "cancelled: timeout reached (5s)"
    assert repr(reason) == "StopReason(TIMEOUT, 'timeout reached (5s)')"
    copy = pickle.loads(pickle.dumps(reason))
    assert copy == reason and copy.kind is StopKind.TIMEOUT
    assert INTERRUPTED.kind is StopKind.INTERRUPTED


def test_summary_keeps_the_message_and_adds_the_kind() -> None:
    summary = RunSummary(
        "e", "val_accuracy", "maximize", stop_reason=INTERRUPTED.message, stop_kind="interrupted"
    )
    data = summary.to_dict()
    assert data["stop_reason"] == "interrupted by the user"
    assert data["stop_kind"] == "interrupted"
    assert RunSummary.from_dict(data).stop_kind == "interrupted"
