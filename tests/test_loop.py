"""The tuning loop with the local executor: parallelism, failures, dead workers, deadlines,
pruning. Every trial here runs in a real worker process."""

from __future__ import annotations

import math
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import cloudpickle
import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

import kubetune
from kubetune.core.attrs import ATTEMPT, DURATION, FAILURE, MESSAGE, METRICS, RETRIED, RETRY_OF
from kubetune.core.executor import FinishedEvent, ReportEvent
from kubetune.core.trial import Reporter, TrialRequest, TrialStatus
from kubetune.errors import InvalidConfigError
from kubetune.executors.local import LocalExecutor

# Objectives defined here run in worker processes that cannot import this test module.
cloudpickle.register_pickle_by_value(sys.modules[__name__])
optuna.logging.set_verbosity(optuna.logging.WARNING)

X = {"x": {"type": "float", "low": 0.0, "high": 1.0}}


def _by_state(study: optuna.Study, state: TrialState) -> list[FrozenTrial]:
    return [t for t in study.trials if t.state == state]


def _claim_first(marker: Path) -> bool:
    """True for exactly one caller across processes: the first to create ``marker``."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    return True


# --- N trials in flight --------------------------------------------------------------------------


def test_parallel_trials_overlap_and_reuse_workers() -> None:
    def objective(params: dict[str, Any]) -> dict[str, float]:
        start = time.time()
        time.sleep(0.3)
        return {"value": params["x"], "pid": os.getpid(), "start": start, "end": time.time()}

    result = kubetune.tune(objective, X, strategy="random", max_trials=10, parallel=2)
    completed = _by_state(result.study, TrialState.COMPLETE)
    assert len(completed) == 10
    metrics = [t.user_attrs[METRICS] for t in completed]

    pids = {int(m["pid"]) for m in metrics}
    assert len(pids) <= 2, f"workers were not reused: {len(pids)} pids for 10 trials"
    assert os.getpid() not in pids  # trials ran in worker processes

    # wall time from the first trial's start to the last one's end, vs the serial time
    span = max(m["end"] for m in metrics) - min(m["start"] for m in metrics)
    serial = sum(m["end"] - m["start"] for m in metrics)
    assert serial >= 10 * 0.3
    assert span < 0.75 * serial, f"no speed-up: {span:.2f}s with 2 workers vs {serial:.2f}s serial"

    # never more than 2 trials at a time
    edges = sorted([(m["start"], 1) for m in metrics] + [(m["end"], -1) for m in metrics])
    running, most = 0, 0
    for _, step in edges:
        running += step
        most = max(most, running)
    assert most == 2


# --- failures ----------------------------------------------------------------------------------


def _mode_objective(params: dict[str, Any]) -> float:
    mode = params["mode"]
    if mode == "raise":
        raise ValueError("boom in the trial")
    if mode == "invalid":
        raise InvalidConfigError("this config cannot be trained")
    if mode == "nan":
        return float("nan")
    if mode == "-inf":
        return float("-inf")  # would be the best of a minimized study if it counted
    return {"ok-high": 2.0, "ok-low": 1.0}[mode]


def test_failed_trials_are_recorded_not_retried_and_never_best() -> None:
    modes = ["ok-high", "raise", "invalid", "nan", "-inf", "ok-low"]
    result = kubetune.tune(
        _mode_objective, {"mode": modes}, strategy="grid", max_trials=len(modes), parallel=2
    )
    study = result.study
    assert len(study.trials) == len(modes)  # nothing was retried
    assert result.stop_reason.startswith("max_trials reached")
    by_mode = {t.params["mode"]: t for t in study.trials}
    assert set(by_mode) == set(modes)

    expected = {
        "raise": "error",
        "invalid": "invalid_config",
        "nan": "not_finite",
        "-inf": "not_finite",
    }
    for mode, failure in expected.items():
        trial = by_mode[mode]
        assert trial.state == TrialState.FAIL, mode
        assert trial.user_attrs[FAILURE] == failure, mode
        assert trial.user_attrs[RETRIED] is False, mode
    assert "ValueError: boom in the trial" in by_mode["raise"].user_attrs[MESSAGE]
    assert "this config cannot be trained" in by_mode["invalid"].user_attrs[MESSAGE]
    assert "nan" in by_mode["nan"].user_attrs[MESSAGE]
    assert "-inf" in by_mode["-inf"].user_attrs[MESSAGE]
    assert not any(RETRY_OF in t.user_attrs for t in study.trials)

    assert by_mode["ok-high"].state == by_mode["ok-low"].state == TrialState.COMPLETE
    assert result.best_value == 1.0 and math.isfinite(result.best_value)
    assert result.best_params == {"mode": "ok-low"}
    assert result.best_trial_number == by_mode["ok-low"].number
    assert result.best_trial is not None and result.best_trial.params == by_mode["ok-low"].params


# --- a worker dies mid-trial ---------------------------------------------------------------------


def test_killed_worker_fails_the_trial_and_the_retry_completes(tmp_path: Path) -> None:
    marker = tmp_path / "killed-once"

    def objective(params: dict[str, Any]) -> float:
        if _claim_first(marker):
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.05)
        return params["x"]

    result = kubetune.tune(objective, X, strategy="random", max_trials=5, parallel=2)
    study = result.study
    failed = _by_state(study, TrialState.FAIL)
    completed = _by_state(study, TrialState.COMPLETE)
    assert len(failed) == 1
    assert len(completed) == 5  # the killed trial is not counted, its retry is
    assert result.stop_reason.startswith("max_trials reached")

    dead = failed[0]
    assert dead.user_attrs[FAILURE] == "infrastructure"
    assert "worker process died" in dead.user_attrs[MESSAGE]
    assert dead.user_attrs[RETRIED] is True
    retries = [t for t in study.trials if t.user_attrs.get(RETRY_OF) == dead.number]
    assert len(retries) == 1
    retry = retries[0]
    assert retry.state == TrialState.COMPLETE
    assert retry.params == dead.params
    assert retry.user_attrs[ATTEMPT] == 2
    assert retry.number > dead.number


@pytest.mark.slow
@pytest.mark.parametrize("retries", [0, 2])
def test_always_dying_config_ends_failed_after_retries(tmp_path: Path, retries: int) -> None:
    doomed = tmp_path / "doomed"

    def objective(params: dict[str, Any]) -> float:
        if _claim_first(doomed):
            doomed.write_text(repr(params["x"]))
        if doomed.read_text() == repr(params["x"]):
            os.kill(os.getpid(), signal.SIGKILL)  # this config always kills its worker
        return params["x"]

    result = kubetune.tune(
        objective, X, strategy="random", max_trials=4, parallel=2, retries=retries
    )
    study = result.study
    assert result.stop_reason.startswith("max_trials reached")
    failed = sorted(_by_state(study, TrialState.FAIL), key=lambda t: t.number)
    assert len(failed) == retries + 1  # the first attempt and every retry
    assert all(t.user_attrs[FAILURE] == "infrastructure" for t in failed)
    assert len({t.params["x"] for t in failed}) == 1
    assert [t.user_attrs.get(ATTEMPT, 1) for t in failed] == list(range(1, retries + 2))
    assert [t.user_attrs[RETRIED] for t in failed] == [True] * retries + [False]
    assert all(t.user_attrs[RETRY_OF] == failed[0].number for t in failed[1:])
    # the final failure counts as a finished trial: 3 other configs complete
    assert len(_by_state(study, TrialState.COMPLETE)) == 3
    assert not _by_state(study, TrialState.WAITING)
    assert not _by_state(study, TrialState.RUNNING)


# --- deadlines -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_hanging_trial_is_killed_at_its_deadline(tmp_path: Path) -> None:
    marker = tmp_path / "hang"

    def objective(params: dict[str, Any]) -> float:
        if _claim_first(marker):
            time.sleep(60)
        # each worker's first trial also pays its start-up; the deadline must not count it
        time.sleep(0.5)
        return params["x"]

    start = time.monotonic()
    result = kubetune.tune(
        objective, X, strategy="random", max_trials=4, parallel=2, trial_timeout=1
    )
    elapsed = time.monotonic() - start
    study = result.study
    assert elapsed < 20, "the loop waited for the hanging trial"
    failed = _by_state(study, TrialState.FAIL)
    assert len(failed) == 1
    assert failed[0].user_attrs[FAILURE] == "deadline"
    assert failed[0].user_attrs[RETRIED] is False
    assert "deadline of 1s" in failed[0].user_attrs[MESSAGE]
    assert 1.0 <= failed[0].user_attrs[DURATION] < 5.0
    assert len(_by_state(study, TrialState.COMPLETE)) == 3
    assert len(study.trials) == 4  # a deadline is the config's fault: no retry


def test_worker_start_up_is_not_charged_to_the_deadline() -> None:
    # a fresh worker takes ~0.7 s to import kubetune+optuna on this kind of machine
    def objective(params: dict[str, Any]) -> float:
        time.sleep(0.6)
        return params["x"]

    result = kubetune.tune(
        objective, X, strategy="random", max_trials=2, parallel=2, trial_timeout=1
    )
    assert [t.state for t in result.study.trials] == [TrialState.COMPLETE] * 2


# --- pruning -------------------------------------------------------------------------------------


def test_pruned_trials_stop_early(tmp_path: Path) -> None:
    steps_log = tmp_path / "steps.log"

    def objective(params: dict[str, Any], ctx: kubetune.TrialContext) -> float:
        value = 0.0
        for step in range(1, (ctx.budget or 0) + 1):
            value = params["x"] + 1.0 / step
            with steps_log.open("a") as log:
                log.write(f"{ctx.number} {step}\n")
            ctx.report(step, value)
        return value

    result = kubetune.tune(
        objective,
        X,
        strategy="random",
        max_trials=15,
        parallel=2,
        fidelity={
            "param": "epochs",
            "min": 1,
            "max": 9,
            "reduction_factor": 3,
            "scheduler": "asha",
        },
    )
    study = result.study
    assert result.scheduler == "asha"
    pruned = _by_state(study, TrialState.PRUNED)
    completed = _by_state(study, TrialState.COMPLETE)
    assert pruned, "ASHA pruned nothing"
    assert completed
    assert len(pruned) + len(completed) == 15

    ran = Counter(int(line.split()[0]) for line in steps_log.read_text().splitlines())
    for trial in completed:
        assert ran[trial.number] == 9
        assert sorted(trial.intermediate_values) == list(range(1, 10))
    for trial in pruned:
        assert 1 <= ran[trial.number] < 9
        assert len(trial.intermediate_values) == ran[trial.number]
    assert result.best_value is not None
    assert result.best_value == min(t.value for t in completed if t.value is not None)


# --- the executor on its own ---------------------------------------------------------------------


def _reporting_fn(request: TrialRequest, reporter: Reporter) -> float:
    for step in range(1, 4):
        reporter.report(step, float(step))
    if request.params.get("hang"):
        time.sleep(60)
    return float(request.params["x"])


def _events_until_finished(ex: LocalExecutor, number: int, limit_s: float = 30) -> list[Any]:
    events: list[Any] = []
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        for event in ex.poll(timeout=0.5):
            events.append(event)
            if isinstance(event, ReportEvent):
                ex.answer(event.number, False)
            elif event.number == number:
                return events
    raise AssertionError(f"trial {number} did not finish: {events}")


def test_local_executor_relays_reports_results_and_cancellation() -> None:
    ex = LocalExecutor(_reporting_fn, workers=1)
    with ex:
        assert ex.capacity == 1
        ex.submit(TrialRequest(study="s", number=0, params={"x": 0.25}, seed=1))
        events = _events_until_finished(ex, 0)
        reports = [(e.step, e.value) for e in events if isinstance(e, ReportEvent)]
        assert reports == [(1, 1.0), (2, 2.0), (3, 3.0)]
        done = events[-1]
        assert isinstance(done, FinishedEvent)
        assert done.outcome.status is TrialStatus.COMPLETED
        assert done.outcome.value == 0.25
        assert done.outcome.curve == [(1, 1.0), (2, 2.0), (3, 3.0)]

        ex.submit(TrialRequest(study="s", number=1, params={"x": 0.5, "hang": True}, seed=1))
        seen = 0
        while seen < 3:  # the trial is past its reports, sleeping
            for event in ex.poll(timeout=0.5):
                assert isinstance(event, ReportEvent)
                ex.answer(event.number, False)
                seen += 1
        ex.cancel(1, "stop it")
        done = _events_until_finished(ex, 1, limit_s=10)[-1]
        assert done.outcome.status is TrialStatus.FAILED
        assert done.outcome.failure is not None and done.outcome.failure.value == "cancelled"
        assert done.outcome.message == "stop it"

        # the worker was replaced: the executor still runs trials
        ex.submit(TrialRequest(study="s", number=2, params={"x": 0.75}, seed=1))
        done = _events_until_finished(ex, 2)[-1]
        assert done.outcome.value == 0.75
