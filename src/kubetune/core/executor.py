"""What the loop needs from an executor: run trials somewhere, relay reports and results.

An executor is where trials run: reused worker processes on this machine (``local``), one
``kubetune trial`` process per trial (``subprocess``), or pods in a cluster. The loop never
knows which; it only relies on the contract written down on :class:`Executor`, which the
conformance suite in ``kubetune.testing.executors`` checks for every implementation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

from kubetune.core.trial import TrialOutcome, TrialRequest

if TYPE_CHECKING:
    from kubetune.core.run_trial import TrialFunction
    from kubetune.core.spec import ExperimentSpec

__all__ = ["Executor", "ExecutorContext", "ExecutorEvent", "FinishedEvent", "ReportEvent"]


@dataclass(frozen=True)
class ExecutorContext:
    """What an executor may need to run the trials of one search."""

    spec: ExperimentSpec
    # The trial function for executors that run Python in workers (local); None means the
    # spec's built-in trainer, which executors running ``kubetune trial`` rebuild from the spec.
    trial_fn: TrialFunction | None = None
    # Where trial requests, results and checkpoints go (the run folder's ``trials/``).
    work_dir: Path | None = None


@dataclass(frozen=True)
class ReportEvent:
    """A running trial reported an intermediate value and waits for a prune decision."""

    number: int
    step: int
    value: float


@dataclass(frozen=True)
class FinishedEvent:
    number: int
    outcome: TrialOutcome


ExecutorEvent = ReportEvent | FinishedEvent


class Executor(ABC):
    """Runs up to ``capacity`` trials at once and tells the loop what happens to them.

    The contract every executor keeps (checked by the conformance suite):

    * **One finished event per submit.** Every request passed to :meth:`submit` produces
      exactly one :class:`FinishedEvent` from :meth:`poll`, whatever happens to the trial:
      completed, pruned, failed, cancelled, or its runner died. Never zero, never two.
    * **Reports wait for their answer.** A :class:`ReportEvent` blocks the trial until the
      loop calls :meth:`answer` for it; ``prune=True`` makes the trial stop and finish as
      pruned. A trial whose executor cannot deliver reports goes on without pruning.
    * **Cancel yields cancelled exactly once.** After :meth:`cancel`, the trial's one
      finished event is a failure of kind ``CANCELLED`` carrying the reason given (unless it
      had already finished: then the earlier event stands and cancel does nothing). The
      loop waits up to :attr:`cancel_grace_s` for it.
    * **The deadline counts from when the trial runs.** ``request.deadline_s`` starts when
      the trial's code can start (a worker is ready, a pod is running), not at submission:
      queueing, image pulls and interpreter start-up are not the trial's time. A trial past
      its deadline is stopped and finishes as a ``DEADLINE`` failure.
    * **A dead runner is an infrastructure failure.** A worker process, subprocess or pod
      that dies without a result (killed, OOM, evicted, node lost) finishes its trial as
      ``INFRASTRUCTURE``; the loop retries those.
    * **Capacity is respected by the loop**: ``submit`` is only called while fewer than
      ``capacity`` trials are in flight.

    Executors are created through :mod:`kubetune.executors` (by ``kind``) and used as
    context managers; :meth:`close` stops whatever still runs.
    """

    #: The ``executor.kind`` this class is registered under.
    kind: ClassVar[str] = ""
    #: How long the loop waits, after cancelling trials, for their finished events.
    cancel_grace_s: float = 10.0

    @classmethod
    def from_context(cls, options: dict[str, Any], context: ExecutorContext) -> Executor:
        """Build the executor from the spec's ``executor:`` options (``kind`` removed).

        Unknown or invalid options raise :class:`~kubetune.errors.SpecError` naming the field.
        """
        raise NotImplementedError(f"{cls.__name__} cannot be created from a spec")

    @property
    @abstractmethod
    def capacity(self) -> int:
        """How many trials may run at once."""

    @abstractmethod
    def submit(self, request: TrialRequest) -> None:
        """Start the trial (or queue it to start as soon as a runner is free)."""

    @abstractmethod
    def poll(self, timeout: float) -> list[ExecutorEvent]:
        """Events that happened, waiting up to ``timeout`` seconds for the first one."""

    @abstractmethod
    def answer(self, number: int, prune: bool) -> None:
        """Answer the trial's pending report: go on (``False``) or stop as pruned."""

    @abstractmethod
    def cancel(self, number: int, reason: str) -> None:
        """Stop a running trial; its finished event (a ``CANCELLED`` failure) follows."""

    def recover(self, running: Sequence[TrialRequest]) -> list[int]:
        """Re-attach to trials a previous controller left running; return their numbers.

        ``running`` holds the requests of trials that storage still marks RUNNING when a
        controller starts. An executor whose trials can outlive the controller (pods, Jobs)
        adopts the ones still alive: they count against ``capacity`` and their events
        follow from :meth:`poll` as for submitted trials. Trials not returned are failed by
        the loop as stale and retried. The default adopts nothing: local processes die with
        their controller.
        """
        return []

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release runners; trials still running are stopped."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
