"""A scripted, in-process executor: trials do exactly what a test says, poll by poll.

Time plays no part: every :meth:`FakeExecutor.poll` is one tick, and each trial follows its
:class:`TrialScript` (report these values, then complete with ``value`` or fail with
``fail``, or hang until cancelled). The executor can also raise ``KeyboardInterrupt`` from
a given poll (Ctrl-C) and adopt trials in :meth:`FakeExecutor.recover`, so the loop's
interrupt, wind-down, cancel and recover paths can be tested deterministically, and the
loop's own cost measured without any worker in the way (``benchmarks/loop_scaling.py``).

It keeps the executor contract (one finished event per submit, reports wait for their
answer, a cancel yields one ``CANCELLED`` failure) and checks the loop's side of it: a
submit beyond ``capacity``, an answer without a pending report or a duplicate trial number
raise ``AssertionError``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from kubetune.core.executor import Executor, ExecutorEvent, FinishedEvent, ReportEvent
from kubetune.core.trial import TrialFailure, TrialOutcome, TrialRequest, TrialStatus

__all__ = ["FakeExecutor", "TrialScript"]


@dataclass(frozen=True)
class TrialScript:
    """What one trial does, counted in polls after it was submitted (or adopted)."""

    #: The objective value it completes with (ignored when it fails or hangs).
    value: float = 0.0
    #: Values reported at steps 1, 2, ...: one per poll, each waiting for the loop's answer;
    #: an answer to prune ends the trial as pruned on the next poll.
    reports: Sequence[float] = ()
    #: Polls after its reports until it finishes (1: on the first poll after them).
    polls: int = 1
    #: Fail with this kind (and ``message``) instead of completing.
    fail: TrialFailure | None = None
    message: str = "scripted failure"
    #: Run until cancelled.
    hang: bool = False
    metrics: Mapping[str, float] = field(default_factory=dict)
    duration_s: float = 0.0

    def outcome(self) -> TrialOutcome:
        if self.fail is not None:
            return TrialOutcome.failed(self.fail, self.message, duration_s=self.duration_s)
        return TrialOutcome(
            TrialStatus.COMPLETED,
            value=self.value,
            metrics=dict(self.metrics),
            duration_s=self.duration_s,
        )


@dataclass
class _Run:
    request: TrialRequest
    script: TrialScript
    reported: int = 0
    waiting_answer: bool = False
    pruned: bool = False
    ticks: int = 0
    cancel_reason: str | None = None


ScriptSource = TrialScript | Mapping[int, TrialScript] | Callable[[TrialRequest], TrialScript]


class FakeExecutor(Executor):
    """Runs trials by script, in this process, one tick per :meth:`poll`.

    ``script``: one script for every trial, a mapping by trial number (others get the
    default script: complete with 0.0 on the next poll), or a function of the request.
    ``interrupt_at_poll``: the n-th call of :meth:`poll` (1-based) raises
    ``KeyboardInterrupt``, as Ctrl-C would. ``adopt``: trial numbers :meth:`recover` adopts
    (when offered); adopted trials then follow their scripts like submitted ones.
    """

    kind = "fake"

    def __init__(
        self,
        script: ScriptSource | None = None,
        *,
        capacity: int = 2,
        interrupt_at_poll: int | None = None,
        adopt: Iterable[int] = (),
        cancel_grace_s: float = 1.0,
    ) -> None:
        self._script = script if script is not None else TrialScript()
        self._capacity = capacity
        self.interrupt_at_poll = interrupt_at_poll
        self.adopt = set(adopt)
        self.cancel_grace_s = cancel_grace_s
        self._runs: dict[int, _Run] = {}
        # what the loop did, for tests to assert on
        self.polls = 0
        self.submitted: list[TrialRequest] = []
        self.recovered: list[list[TrialRequest]] = []  # the requests offered per recover call
        self.answers: list[tuple[int, bool]] = []
        self.cancelled: dict[int, str] = {}
        self.finished: list[FinishedEvent] = []
        self.closed = False

    # --- Executor ------------------------------------------------------------------------

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def running(self) -> list[int]:
        """Numbers of the trials running now."""
        return list(self._runs)

    def submit(self, request: TrialRequest) -> None:
        if len(self._runs) >= self._capacity:
            raise AssertionError(f"submit beyond capacity {self._capacity}: {request.number}")
        self._start(request)

    def recover(self, running: Sequence[TrialRequest]) -> list[int]:
        self.recovered.append(list(running))
        adopted = [r.number for r in running if r.number in self.adopt]
        for request in running:
            if request.number in self.adopt:
                self._runs[request.number] = _Run(request, self._script_for(request))
        return adopted

    def poll(self, timeout: float) -> list[ExecutorEvent]:
        self.polls += 1
        if self.interrupt_at_poll == self.polls:
            raise KeyboardInterrupt
        events: list[ExecutorEvent] = []
        for number, run in list(self._runs.items()):
            event = self._tick(run)
            if event is None:
                continue
            if isinstance(event, FinishedEvent):
                del self._runs[number]
                self.finished.append(event)
            events.append(event)
        return events

    def answer(self, number: int, prune: bool) -> None:
        run = self._runs.get(number)
        if run is None or not run.waiting_answer:
            raise AssertionError(f"answer for trial {number}, which waits for none")
        self.answers.append((number, prune))
        run.waiting_answer = False
        run.pruned = prune

    def cancel(self, number: int, reason: str) -> None:
        run = self._runs.get(number)
        if run is None:
            return  # finished already: its event stands
        self.cancelled[number] = reason
        run.cancel_reason = reason

    def close(self) -> None:
        self.closed = True
        self._runs.clear()

    # --- helpers -------------------------------------------------------------------------

    def _start(self, request: TrialRequest) -> None:
        if request.number in self._runs:
            raise AssertionError(f"trial {request.number} submitted while it runs")
        self.submitted.append(request)
        self._runs[request.number] = _Run(request, self._script_for(request))

    def _script_for(self, request: TrialRequest) -> TrialScript:
        source = self._script
        if isinstance(source, TrialScript):
            return source
        if isinstance(source, Mapping):
            return source.get(request.number, TrialScript())
        return source(request)

    def _tick(self, run: _Run) -> ExecutorEvent | None:
        number, script = run.request.number, run.script
        if run.cancel_reason is not None:
            outcome = TrialOutcome.failed(TrialFailure.CANCELLED, run.cancel_reason)
            return FinishedEvent(number, outcome)
        if run.pruned:
            return FinishedEvent(number, TrialOutcome(TrialStatus.PRUNED))
        if run.waiting_answer:
            return None
        if run.reported < len(script.reports):
            run.reported += 1
            run.waiting_answer = True
            return ReportEvent(number, run.reported, float(script.reports[run.reported - 1]))
        if script.hang:
            return None
        run.ticks += 1
        if run.ticks < script.polls:
            return None
        return FinishedEvent(number, script.outcome())
