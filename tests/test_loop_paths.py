"""The loop's paths, driven deterministically by the scripted FakeExecutor.

Each poll is one tick of the fake executor, so interrupt (Ctrl-C), wind-down, cancel
(timeout), abandon (killed between ask and suggest), recover (adopting trials a dead
controller left running) and lease loss happen at an exact point, not after a sleep.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from kubetune.core import optuna_compat as compat
from kubetune.core.attrs import (
    ATTEMPT,
    CONTROLLER_DEATHS,
    FAILURE,
    FIXED_PARAMS,
    LEASE,
    MESSAGE,
    PARAMS,
    RETRIED,
    RETRY_OF,
)
from kubetune.core.events import LoopProgress
from kubetune.core.loop import MAX_CONTROLLER_DEATHS, LoopResult, TuningLoop, trial_seed
from kubetune.core.space import SearchSpace
from kubetune.core.spec import parse_spec
from kubetune.core.stop_reason import INTERRUPTED, StopKind, StopReason
from kubetune.core.storage import journal_storage
from kubetune.core.study_state import StudyState
from kubetune.core.termination import MaxTrials, StopCondition, TargetReached
from kubetune.core.trial import TrialFailure, TrialRequest
from kubetune.testing.fake_executor import FakeExecutor, TrialScript

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _space() -> SearchSpace:
    spec = parse_spec(
        {
            "name": "paths",
            "objective": {"metric": "value", "direction": "minimize"},
            "search_space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        },
        source="test",
    )
    return spec.space


def _study(storage: Any = None, **kw: Any) -> optuna.Study:
    return optuna.create_study(
        study_name="paths",
        storage=storage,
        sampler=optuna.samplers.RandomSampler(seed=0),
        direction="minimize",
        **kw,
    )


def _run(
    study: optuna.Study,
    executor: FakeExecutor,
    conditions: list[StopCondition] | None = None,
    max_trials: int | None = 4,
    **kw: Any,
) -> LoopResult:
    loop = TuningLoop(
        study,
        _space(),
        executor,
        stop_conditions=conditions if conditions is not None else [MaxTrials(max_trials or 4)],
        max_trials=max_trials,
        seed=3,
        **kw,
    )
    return loop.run()


def _states(study: optuna.Study) -> list[TrialState]:
    return [t.state for t in study.get_trials(deepcopy=False)]


class AfterPolls(StopCondition):
    """Fires once the executor was polled ``n`` times: a timeout at an exact point."""

    def __init__(self, executor: FakeExecutor, n: int, kind: StopKind = StopKind.TIMEOUT) -> None:
        self.executor, self.n, self.kind = executor, n, kind

    def check(self, state: StudyState) -> StopReason | None:
        if self.executor.polls >= self.n:
            return StopReason(self.kind, "timeout reached (1s)")
        return None

    def describe(self) -> str:
        return f"{self.n} polls"


# --- the plain path ------------------------------------------------------------------------------


def test_runs_max_trials_with_capacity_in_flight() -> None:
    executor = FakeExecutor(lambda r: TrialScript(value=float(r.number)), capacity=2)
    study = _study()
    result = _run(study, executor, max_trials=5)
    assert result.stop_reason.kind is StopKind.MAX_TRIALS
    assert result.stop_reason == "max_trials reached (5 trials finished)"
    assert _states(study) == [TrialState.COMPLETE] * 5
    assert [r.number for r in executor.submitted] == [0, 1, 2, 3, 4]
    assert [r.seed for r in executor.submitted] == [trial_seed(3, n) for n in range(5)]
    assert result.progress.completed == 5 and result.progress.best_value == 0.0
    assert executor.cancelled == {} and executor.recovered == [[]]


def test_progress_follows_the_study() -> None:
    seen: list[LoopProgress] = []

    class Observer:
        def on_start(self, progress: LoopProgress) -> None:
            seen.append(progress)

        def on_trial_finished(self, trial: FrozenTrial, progress: LoopProgress) -> None:
            seen.append(progress)

        def on_stop(self, reason: str, progress: LoopProgress) -> None:
            seen.append(progress)

    scripts = {
        0: TrialScript(value=2.0),
        1: TrialScript(fail=TrialFailure.INVALID_CONFIG),
        2: TrialScript(value=1.0, polls=3),
        3: TrialScript(value=5.0),
    }
    study = _study()
    _run(study, FakeExecutor(scripts), max_trials=4, observer=Observer())
    assert seen[0].finished == 0
    finished = [p.finished for p in seen[1:-1]]
    assert finished == sorted(finished) and finished[-1] == 4
    last = seen[-1]
    assert (last.completed, last.pruned, last.failed, last.running) == (3, 0, 1, 0)
    assert last.best_value == 1.0


# --- failures and retries ----------------------------------------------------------------------


def test_infrastructure_failure_is_retried_with_its_params() -> None:
    scripts = {0: TrialScript(fail=TrialFailure.INFRASTRUCTURE, message="node lost")}
    study = _study()
    executor = FakeExecutor(scripts, capacity=1)
    result = _run(study, executor, max_trials=2)
    assert result.stop_reason.kind is StopKind.MAX_TRIALS
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert trials[0].user_attrs[FAILURE] == "infrastructure"
    assert trials[0].user_attrs[MESSAGE] == "node lost"
    assert trials[0].user_attrs[RETRIED] is True
    assert trials[1].params == trials[0].params  # the retry ran first, same config
    assert trials[1].user_attrs[ATTEMPT] == 2 and trials[1].user_attrs[RETRY_OF] == 0
    # the retry keeps the config's seed
    assert executor.submitted[1].seed == executor.submitted[0].seed
    assert executor.submitted[1].attempt == 2


def test_invalid_config_is_final() -> None:
    study = _study()
    _run(study, FakeExecutor({0: TrialScript(fail=TrialFailure.INVALID_CONFIG)}), max_trials=2)
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert trials[0].user_attrs[RETRIED] is False


# --- reports and pruning -------------------------------------------------------------------------


def test_reports_are_answered_and_pruned() -> None:
    study = _study(pruner=optuna.pruners.ThresholdPruner(upper=0.5))
    scripts = {0: TrialScript(reports=[0.9, 0.1], value=0.1), 1: TrialScript(reports=[0.2])}
    executor = FakeExecutor(scripts, capacity=1)
    _run(study, executor, max_trials=2)
    assert executor.answers == [(0, True), (1, False)]
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.PRUNED, TrialState.COMPLETE]
    assert trials[0].intermediate_values == {1: 0.9}


def test_a_report_at_the_full_budget_is_never_pruned() -> None:
    study = _study(pruner=optuna.pruners.ThresholdPruner(upper=0.5))
    executor = FakeExecutor(TrialScript(reports=[0.9, 0.9]), capacity=1)
    _run(study, executor, max_trials=1, budget=2)
    assert executor.answers == [(0, True)]  # step 1 pruned; step 2 would not have been
    executor = FakeExecutor(TrialScript(reports=[0.9]), capacity=1)
    _run(_study(pruner=optuna.pruners.ThresholdPruner(upper=0.5)), executor, budget=1)
    assert executor.answers[0] == (0, False)


# --- interrupt, wind-down, cancel ----------------------------------------------------------------


def test_ctrl_c_cancels_running_trials_and_queues_them() -> None:
    study = _study()
    executor = FakeExecutor(TrialScript(hang=True), capacity=2, interrupt_at_poll=3)
    result = _run(study, executor, max_trials=10)
    assert result.stop_reason is INTERRUPTED and result.stop_reason.kind is StopKind.INTERRUPTED
    assert executor.cancelled == {0: str(INTERRUPTED), 1: str(INTERRUPTED)}
    trials = study.get_trials(deepcopy=False)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    waiting = [t for t in trials if t.state == TrialState.WAITING]
    assert [t.number for t in failed] == [0, 1]
    for trial in failed:
        assert trial.user_attrs[FAILURE] == "cancelled"
        assert trial.user_attrs[MESSAGE] == "interrupted by the user"
        assert trial.user_attrs[RETRIED] is True  # a cancelled trial costs no retry
    assert [t.system_attrs[FIXED_PARAMS] for t in waiting] == [t.params for t in failed]
    assert [t.user_attrs[ATTEMPT] for t in waiting] == [1, 1]
    # issue 7.18: cancelled trials queued to run again are not failed trials
    assert result.progress.running == 0 and result.progress.failed == 0
    assert result.progress.requeued == 2


def test_wind_down_lets_running_trials_finish() -> None:
    # trial 0 reaches the target on the first poll while trial 1 still runs
    scripts = {0: TrialScript(value=0.0), 1: TrialScript(value=0.5, polls=4)}
    study = _study()
    executor = FakeExecutor(scripts, capacity=2)
    result = _run(study, executor, conditions=[TargetReached(0.1)], max_trials=None)
    assert result.stop_reason.kind is StopKind.TARGET
    assert executor.cancelled == {}
    assert _states(study) == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert executor.polls == 4 and len(executor.submitted) == 2  # nothing new asked


def test_timeout_cancels_running_trials() -> None:
    executor = FakeExecutor({1: TrialScript(hang=True)}, capacity=2)
    study = _study()
    result = _run(study, executor, conditions=[AfterPolls(executor, 2)], max_trials=None)
    assert result.stop_reason.kind is StopKind.TIMEOUT
    assert executor.cancelled == {1: "cancelled: timeout reached (1s)"}
    trials = study.get_trials(deepcopy=False)
    assert trials[1].state == TrialState.FAIL
    assert trials[1].user_attrs[FAILURE] == "cancelled" and trials[1].user_attrs[RETRIED] is True
    assert trials[-1].state == TrialState.WAITING
    assert trials[-1].system_attrs[FIXED_PARAMS] == trials[1].params


def test_other_stops_do_not_cancel() -> None:
    executor = FakeExecutor({1: TrialScript(polls=5)}, capacity=2)
    study = _study()
    kind = StopKind.PATIENCE
    result = _run(study, executor, conditions=[AfterPolls(executor, 2, kind)], max_trials=None)
    assert result.stop_reason.kind is kind and executor.cancelled == {}
    assert all(s == TrialState.COMPLETE for s in _states(study))


class DeafExecutor(FakeExecutor):
    """Ignores cancels: the loop must give up after ``cancel_grace_s``."""

    def cancel(self, number: int, reason: str) -> None:
        self.cancelled[number] = reason


def test_cancel_waits_no_longer_than_the_executors_grace() -> None:
    executor = DeafExecutor(TrialScript(hang=True), capacity=1, cancel_grace_s=0.3)
    study = _study()
    start = time.monotonic()
    result = _run(study, executor, conditions=[AfterPolls(executor, 1)], max_trials=None)
    elapsed = time.monotonic() - start
    assert result.stop_reason.kind is StopKind.TIMEOUT
    assert 0.3 <= elapsed < 3.0
    assert _states(study) == [TrialState.RUNNING]  # not recorded: it never said it stopped


# --- resume: abandon and recover -----------------------------------------------------------------


def test_trial_killed_between_ask_and_suggest_is_replaced() -> None:
    study = _study()
    study.ask()  # a controller died right here: RUNNING, no params
    executor = FakeExecutor()
    result = _run(study, executor, max_trials=2)
    assert result.stop_reason.kind is StopKind.MAX_TRIALS
    trials = study.get_trials(deepcopy=False)
    assert trials[0].state == TrialState.FAIL
    assert "before this trial started" in trials[0].user_attrs[MESSAGE]
    assert trials[0].user_attrs[RETRIED] is True  # replaced, not a final failure
    assert executor.recovered == [[]]  # nothing ran: nothing to offer for adoption
    assert [t.state for t in trials[1:]] == [TrialState.COMPLETE] * 2
    assert not any(RETRY_OF in t.user_attrs for t in trials)


def _left_running(study: optuna.Study, attrs: dict[str, Any]) -> int:
    """A trial a dead controller submitted: params suggested, PARAMS written, RUNNING."""
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    for key, value in {**attrs, PARAMS: {"x": trial.params["x"]}}.items():
        trial.set_user_attr(key, value)
    return trial.number


def test_recover_adopts_live_trials_and_fails_the_rest() -> None:
    study = _study()
    adopted = _left_running(study, {ATTEMPT: 2, RETRY_OF: 7})
    stale = _left_running(study, {})
    executor = FakeExecutor({adopted: TrialScript(value=-1.0, polls=2)}, adopt=[adopted])
    result = _run(study, executor, max_trials=3)

    offered = executor.recovered[0]
    assert [r.number for r in offered] == [adopted, stale]
    trials = study.get_trials(deepcopy=False)
    rebuilt = offered[0]
    assert isinstance(rebuilt, TrialRequest)
    assert rebuilt.params == trials[adopted].user_attrs[PARAMS]
    assert rebuilt.attempt == 2 and rebuilt.seed == trial_seed(3, 7)
    assert offered[1].attempt == 1 and offered[1].seed == trial_seed(3, stale)

    # the adopted trial was never submitted again and finished with its own result
    assert adopted not in {r.number for r in executor.submitted}
    assert trials[adopted].state == TrialState.COMPLETE and trials[adopted].value == -1.0
    assert result.progress.best_value == -1.0
    # the other one is failed as stale and its config retried
    assert trials[stale].state == TrialState.FAIL
    assert "while this trial was running" in trials[stale].user_attrs[MESSAGE]
    retry = [t for t in trials if t.user_attrs.get(RETRY_OF) == stale]
    assert len(retry) == 1 and retry[0].params == trials[stale].params
    assert retry[0].state == TrialState.COMPLETE
    assert result.stop_reason.kind is StopKind.MAX_TRIALS
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3


def test_recover_ignores_numbers_it_was_not_offered() -> None:
    study = _study()
    study.ask()  # no params: abandoned, never offered
    executor = FakeExecutor(adopt=[0, 99])
    _run(study, executor, max_trials=1)
    assert study.get_trials(deepcopy=False)[0].state == TrialState.FAIL


# --- the lease -----------------------------------------------------------------------------------


class Usurper(FakeExecutor):
    """Another controller takes the study's lease over on the given poll."""

    def __init__(self, study: optuna.Study, at_poll: int, **kw: Any) -> None:
        super().__init__(**kw)
        self.study, self.at_poll = study, at_poll

    def poll(self, timeout: float) -> list[Any]:
        if self.polls + 1 == self.at_poll:
            lease = dict(compat.study_system_attrs(self.study)[LEASE])
            lease.update(owner="someone-else", host="elsewhere", pid=4242)
            compat.set_study_system_attr(self.study, LEASE, lease)
        time.sleep(0.01)
        return super().poll(timeout)


def test_a_lost_lease_stops_the_loop_without_writing(tmp_path: Path) -> None:
    study = _study(journal_storage(tmp_path / "study.journal"))
    executor = Usurper(study, 2, script=TrialScript(hang=True), capacity=2)
    result = _run(study, executor, max_trials=None, conditions=[], lease_ttl_s=0.2)
    assert result.stop_reason.kind is StopKind.LEASE_LOST
    assert "host elsewhere, pid 4242" in result.stop_reason
    assert set(executor.cancelled) == {0, 1}
    # the new owner reconciles these; this controller wrote nothing more
    assert _states(study) == [TrialState.RUNNING, TrialState.RUNNING]
    assert compat.study_system_attrs(study)[LEASE]["owner"] == "someone-else"  # not cleared


@pytest.mark.parametrize("storage", ["memory", "journal"])
def test_the_lease_is_released_on_every_exit(tmp_path: Path, storage: str) -> None:
    backend = journal_storage(tmp_path / "s.journal") if storage == "journal" else None
    study = _study(backend)
    _run(study, FakeExecutor(interrupt_at_poll=1, script=TrialScript(hang=True)))
    _run(study, FakeExecutor(), max_trials=2)
    assert compat.study_system_attrs(study).get(LEASE) is None

    class Broken(FakeExecutor):
        def poll(self, timeout: float) -> list[Any]:
            raise RuntimeError("executor bug")

    with pytest.raises(RuntimeError, match="executor bug"):
        _run(study, Broken(), max_trials=5)
    assert compat.study_system_attrs(study).get(LEASE) is None


@pytest.mark.parametrize(
    ("deaths_before", "attempt_after", "deaths_after"),
    # up to MAX_CONTROLLER_DEATHS (10) in a row are free; each one past it spends a retry
    # and the row goes on counting
    [(0, 1, 1), (3, 1, 4), (9, 1, 10), (10, 2, 11), (12, 2, 13)],
)
def test_a_controller_death_costs_no_retry_up_to_a_cap(
    deaths_before: int, attempt_after: int, deaths_after: int | None
) -> None:
    """Issue 7.13: every controller kill cost each in-flight trial a retry, so under
    repeated kills configs ended as final failures without ever failing themselves."""
    study = _study()
    attrs: dict[str, Any] = {ATTEMPT: 1}
    if deaths_before:
        attrs[CONTROLLER_DEATHS] = deaths_before
    stale = _left_running(study, attrs)
    _run(study, FakeExecutor(), max_trials=1, retries=2)
    trials = study.get_trials(deepcopy=False)
    assert trials[stale].state == TrialState.FAIL and trials[stale].user_attrs[RETRIED] is True
    (retry,) = [t for t in trials if t.user_attrs.get(RETRY_OF) == stale]
    assert retry.params == trials[stale].params
    assert retry.user_attrs[ATTEMPT] == attempt_after
    assert retry.user_attrs.get(CONTROLLER_DEATHS) == deaths_after


class _ControllerDied(BaseException):
    """The controller process dying with the trial (what a SIGKILL leaves: no cleanup)."""


class TakesControllerDown(FakeExecutor):
    """Every run of the config of trial 0 takes the controller down with it."""

    def submit(self, request: TrialRequest) -> None:
        if (request.retry_of if request.retry_of is not None else request.number) == 0:
            raise _ControllerDied
        super().submit(request)


def test_a_config_that_takes_the_controller_down_every_time_ends_after_a_bounded_number() -> None:
    """The free controller deaths must not let such a config loop forever: past the cap
    each death spends a retry, so it ends as a final failure after cap + retries + 1."""
    study = _study()
    deaths = 0
    while True:
        try:
            _run(study, TakesControllerDown(), max_trials=3, retries=2)
            break
        except _ControllerDied:
            deaths += 1
            assert deaths < 100, "the config keeps taking the controller down"
    assert deaths == MAX_CONTROLLER_DEATHS + 2 + 1
    trials = study.get_trials(deepcopy=False)
    chain = [t for t in trials if int(t.user_attrs.get(RETRY_OF, t.number)) == 0]
    assert [t.state for t in chain] == [TrialState.FAIL] * deaths
    assert [t.user_attrs[RETRIED] for t in chain] == [True] * (deaths - 1) + [False]
    assert [t.user_attrs.get(ATTEMPT, 1) for t in chain][-4:] == [1, 1, 2, 3]
    # the study went on with other configs
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2


class InterruptedSubmit(FakeExecutor):
    """Ctrl-C arrives while the loop hands its ``n``-th trial to the executor."""

    def __init__(self, n: int, **kw: Any) -> None:
        super().__init__(**kw)
        self.n, self.submits = n, 0

    def submit(self, request: TrialRequest) -> None:
        self.submits += 1
        if self.submits == self.n:
            raise KeyboardInterrupt
        super().submit(request)


def test_ctrl_c_while_a_trial_is_handed_over_leaves_nothing_running() -> None:
    """Found by the Ctrl-C CLI test under load: a trial asked but not yet in flight stayed
    RUNNING in storage, and the loop waited out the cancel grace for an event that never
    comes."""
    study = _study()
    executor = InterruptedSubmit(2, script={0: TrialScript(hang=True)})
    result = _run(study, executor, max_trials=4)
    assert result.stop_reason is INTERRUPTED
    trials = study.get_trials(deepcopy=False)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    cancelled = [t for t in trials if t.user_attrs.get(FAILURE) == "cancelled"]
    assert sorted(t.number for t in cancelled) == [0, 1]  # the handed-over one too
    waiting = [t for t in trials if t.state == TrialState.WAITING]
    assert len(waiting) == 2 and all(t.user_attrs[ATTEMPT] == 1 for t in waiting)


def test_ctrl_c_while_params_are_suggested_abandons_the_half_started_trial(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    study = _study()
    space = _space()
    calls = {"n": 0}
    real_suggest = space.suggest

    def interrupted_suggest(trial: Any) -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_suggest(trial)

    monkeypatch.setattr(space, "suggest", interrupted_suggest)
    loop = TuningLoop(
        study,
        space,
        FakeExecutor({0: TrialScript(hang=True)}),
        stop_conditions=[MaxTrials(4)],
        max_trials=4,
    )
    assert loop.run().stop_reason is INTERRUPTED
    trials = study.get_trials(deepcopy=False)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    half = trials[1]
    assert half.state == TrialState.FAIL and "before this trial started" in half.user_attrs[MESSAGE]
