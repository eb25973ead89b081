"""What the loop needs from an executor: run trials somewhere, relay reports and results."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType

from kubetune.core.trial import TrialOutcome, TrialRequest


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
    """Runs up to ``capacity`` trials at once.

    The loop calls ``submit`` for each new trial, then ``poll`` for events; every
    :class:`ReportEvent` must be answered with ``answer``.
    """

    @property
    @abstractmethod
    def capacity(self) -> int: ...

    @abstractmethod
    def submit(self, request: TrialRequest) -> None: ...

    @abstractmethod
    def poll(self, timeout: float) -> list[ExecutorEvent]:
        """Events that happened, waiting up to ``timeout`` seconds for the first one."""

    @abstractmethod
    def answer(self, number: int, prune: bool) -> None: ...

    @abstractmethod
    def cancel(self, number: int, reason: str) -> None:
        """Stop a running trial; a FinishedEvent (failed) follows from ``poll``."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release workers; running trials are stopped."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
