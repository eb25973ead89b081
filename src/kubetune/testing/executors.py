"""The executor conformance suite: the contract of :class:`~kubetune.core.executor.Executor`.

Every executor runs it by subclassing :class:`ExecutorConformance` and providing the
``make_executor`` fixture: a callable ``make(capacity) -> Executor`` whose trials run
:func:`kubetune.testing.trial_functions.scripted` with the objective metric ``value``::

    class TestMyExecutor(ExecutorConformance):
        @pytest.fixture
        def make_executor(self, tmp_path):
            ...

The executor is used as a context manager by each test and closed at its end.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kubetune.core.executor import Executor, FinishedEvent, ReportEvent
from kubetune.core.trial import TrialFailure, TrialOutcome, TrialRequest, TrialStatus

__all__ = ["ExecutorConformance", "MakeExecutor", "request"]

MakeExecutor = Callable[[int], Executor]
# Generous: a subprocess trial pays interpreter start-up, and CI machines are slow.
_WAIT_S = 60.0


def request(number: int, *, deadline_s: float | None = None, **params: Any) -> TrialRequest:
    """A request for the scripted trial function (``params`` script what it does)."""
    return TrialRequest(
        study="conformance",
        number=number,
        params=dict(params),
        seed=number,
        budget=int(params.get("steps", 3)),
        deadline_s=deadline_s,
    )


def run_all(
    executor: Executor,
    requests: list[TrialRequest],
    *,
    prune_at: int | None = None,
    timeout: float = _WAIT_S,
) -> tuple[dict[int, list[FinishedEvent]], list[ReportEvent]]:
    """Submit ``requests``, answer every report (prune at step ``prune_at``), collect events
    until each trial finished, then poll a little longer to catch duplicates."""
    for req in requests:
        executor.submit(req)
    finished: dict[int, list[FinishedEvent]] = {}
    reports: list[ReportEvent] = []
    deadline = time.monotonic() + timeout
    while len(finished) < len(requests):
        assert time.monotonic() < deadline, f"trials still running after {timeout}s: {finished}"
        _collect(executor, 0.2, finished, reports, prune_at)
    _collect(executor, 0.5, finished, reports, prune_at)  # nothing more may arrive
    return finished, reports


def _collect(
    executor: Executor,
    timeout: float,
    finished: dict[int, list[FinishedEvent]],
    reports: list[ReportEvent],
    prune_at: int | None,
) -> None:
    for event in executor.poll(timeout):
        if isinstance(event, ReportEvent):
            reports.append(event)
            executor.answer(event.number, prune_at is not None and event.step >= prune_at)
        else:
            finished.setdefault(event.number, []).append(event)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (killed, not yet reaped by its parent) is dead too
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def only_outcome(finished: dict[int, list[FinishedEvent]], number: int) -> TrialOutcome:
    events = finished[number]
    assert len(events) == 1, f"trial {number} finished {len(events)} times: {events}"
    return events[0].outcome


class ExecutorConformance:
    """Tests every executor must pass. Subclasses provide ``make_executor``."""

    @pytest.fixture
    def make_executor(self) -> MakeExecutor:
        raise NotImplementedError("provide a make_executor fixture")

    @pytest.fixture
    def executor(self, make_executor: MakeExecutor) -> Iterator[Executor]:
        with make_executor(2) as executor:
            yield executor

    # --- results -------------------------------------------------------------------------

    def test_completed_trial_gives_value_and_metrics(self, executor: Executor) -> None:
        assert executor.capacity == 2
        finished, reports = run_all(executor, [request(0, x=0.25)])
        outcome = only_outcome(finished, 0)
        assert outcome.status is TrialStatus.COMPLETED, outcome.message
        assert outcome.value == 0.25
        assert outcome.metrics["value"] == 0.25 and "pid" in outcome.metrics
        assert outcome.duration_s >= 0 and not reports

    def test_one_finished_event_per_submit_with_the_right_failure(self, executor: Executor) -> None:
        script = {
            0: ("raise", TrialFailure.ERROR),
            1: ("invalid", TrialFailure.INVALID_CONFIG),
            2: ("nan", TrialFailure.NOT_FINITE),
            3: ("die", TrialFailure.INFRASTRUCTURE),
            4: ("exit", TrialFailure.ERROR),
            5: ("interrupt", TrialFailure.ERROR),
            6: ("os_exit", TrialFailure.ERROR),
            7: ("complete", None),
        }
        finished: dict[int, list[FinishedEvent]] = {}
        # two at a time: the loop never submits past capacity
        numbers = sorted(script)
        for pair in (numbers[i : i + 2] for i in range(0, len(numbers), 2)):
            part, _ = run_all(executor, [request(n, action=script[n][0]) for n in pair])
            finished.update(part)
        assert sorted(finished) == numbers
        for number, (action, failure) in script.items():
            outcome = only_outcome(finished, number)
            assert outcome.failure is failure, (action, outcome)
            if failure is not None:
                assert outcome.status is TrialStatus.FAILED and outcome.message, action
        assert "scripted failure" in only_outcome(finished, 0).message
        assert "sys.exit" in only_outcome(finished, 4).message
        assert "exit code 7" in only_outcome(finished, 6).message

    def test_executor_goes_on_after_a_runner_died(self, executor: Executor) -> None:
        finished, _ = run_all(executor, [request(0, action="die")])
        assert only_outcome(finished, 0).failure is TrialFailure.INFRASTRUCTURE
        finished, _ = run_all(executor, [request(1, x=0.75), request(2, x=0.5)])
        assert only_outcome(finished, 1).value == 0.75
        assert only_outcome(finished, 2).value == 0.5

    # --- reports -------------------------------------------------------------------------

    def test_reports_arrive_in_order_and_the_trial_goes_on(self, executor: Executor) -> None:
        finished, reports = run_all(executor, [request(0, action="report", steps=3)])
        outcome = only_outcome(finished, 0)
        assert outcome.status is TrialStatus.COMPLETED, outcome.message
        assert [(r.number, r.step, r.value) for r in reports] == [
            (0, 1, 0.1),
            (0, 2, 0.2),
            (0, 3, 0.3),
        ]
        assert outcome.curve == [(1, 0.1), (2, 0.2), (3, 0.3)]
        assert outcome.pruning_off is None

    def test_a_report_waits_for_its_answer(self, executor: Executor) -> None:
        executor.submit(request(0, action="report", steps=1))
        deadline = time.monotonic() + _WAIT_S
        first: list[ReportEvent] = []
        while not first:
            assert time.monotonic() < deadline, "no report arrived"
            events = executor.poll(0.2)
            assert not [e for e in events if isinstance(e, FinishedEvent)], events
            first = [e for e in events if isinstance(e, ReportEvent)]
        # Unanswered, the trial must not finish.
        held_until = time.monotonic() + 1.0
        while time.monotonic() < held_until:
            assert executor.poll(0.2) == [], "the trial went on without an answer"
        executor.answer(0, False)
        finished: dict[int, list[FinishedEvent]] = {}
        while not finished:
            assert time.monotonic() < deadline + 1.0, "no result after the answer"
            _collect(executor, 0.2, finished, [], None)
        assert only_outcome(finished, 0).status is TrialStatus.COMPLETED

    def test_prune_answer_stops_the_trial(self, executor: Executor) -> None:
        finished, reports = run_all(executor, [request(0, action="report", steps=5)], prune_at=2)
        outcome = only_outcome(finished, 0)
        assert outcome.status is TrialStatus.PRUNED, outcome.message
        assert [r.step for r in reports] == [1, 2]
        assert outcome.curve == [(1, 0.1), (2, 0.2)] and outcome.value == 0.2

    # --- cancel and deadlines ------------------------------------------------------------

    def test_cancel_yields_cancelled_exactly_once(self, executor: Executor) -> None:
        executor.submit(request(0, sleep=60))
        executor.poll(1.0)  # let it start
        executor.cancel(0, "cancelled: timeout reached")
        executor.cancel(0, "cancelled twice")  # a second cancel changes nothing
        finished: dict[int, list[FinishedEvent]] = {}
        deadline = time.monotonic() + executor.cancel_grace_s + 10
        while not finished:
            assert time.monotonic() < deadline, "a cancelled trial never finished"
            _collect(executor, 0.2, finished, [], None)
        _collect(executor, 1.0, finished, [], None)
        outcome = only_outcome(finished, 0)
        assert outcome.failure is TrialFailure.CANCELLED
        assert outcome.message == "cancelled: timeout reached"

    def test_cancel_after_the_end_changes_nothing(self, executor: Executor) -> None:
        finished, _ = run_all(executor, [request(0, x=0.3)])
        executor.cancel(0, "too late")
        assert executor.poll(0.5) == []
        assert only_outcome(finished, 0).value == 0.3

    def test_a_trial_past_its_deadline_fails_as_deadline(self, executor: Executor) -> None:
        finished, _ = run_all(executor, [request(0, sleep=60, deadline_s=1.0)])
        outcome = only_outcome(finished, 0)
        assert outcome.failure is TrialFailure.DEADLINE, outcome
        assert "deadline" in outcome.message

    def test_a_deadline_kill_ends_the_processes_the_trial_started(
        self, executor: Executor, tmp_path: Path
    ) -> None:
        pid_file = tmp_path / "child.pid"
        finished, _ = run_all(
            executor,
            [request(0, action="spawn", pid_file=str(pid_file), sleep=60, deadline_s=2.0)],
        )
        assert only_outcome(finished, 0).failure is TrialFailure.DEADLINE
        child = int(pid_file.read_text())
        deadline = time.monotonic() + 5
        while _alive(child):
            assert time.monotonic() < deadline, f"the trial's child {child} outlived the kill"
            time.sleep(0.1)

    def test_the_deadline_counts_from_when_the_trial_runs(
        self, make_executor: MakeExecutor
    ) -> None:
        # A fresh executor: its first trial also pays whatever start-up the runner needs,
        # which must not count against the trial's 1.5 s.
        with make_executor(1) as executor:
            finished, _ = run_all(executor, [request(0, sleep=0.5, deadline_s=1.5)])
        outcome = only_outcome(finished, 0)
        assert outcome.status is TrialStatus.COMPLETED, outcome.message

    # --- capacity and recovery -----------------------------------------------------------

    def test_capacity_trials_run_at_once(self, executor: Executor) -> None:
        finished, _ = run_all(executor, [request(0, sleep=1.0), request(1, sleep=1.0)])
        a, b = (only_outcome(finished, n).metrics for n in (0, 1))
        assert a["start"] < b["end"] and b["start"] < a["end"], "the two trials did not overlap"
        assert a["pid"] != b["pid"]

    def test_recover_adopts_only_trials_it_knows(self, executor: Executor) -> None:
        strangers = [request(40, x=0.1), request(41, x=0.2)]
        adopted = executor.recover(strangers)
        assert set(adopted) <= {40, 41}
        # Whatever it adopted finishes once; what it did not never shows up.
        if adopted:
            finished: dict[int, list[FinishedEvent]] = {}
            deadline = time.monotonic() + _WAIT_S
            while len(finished) < len(adopted):
                assert time.monotonic() < deadline
                _collect(executor, 0.2, finished, [], None)
            assert set(finished) == set(adopted)
        else:
            assert executor.poll(0.5) == []
