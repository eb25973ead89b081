"""Why a tuning loop stopped: a kind to act on and a message to show."""

from __future__ import annotations

from enum import Enum
from typing import Any

__all__ = ["INTERRUPTED", "StopKind", "StopReason"]


class StopKind(Enum):
    MAX_TRIALS = "max_trials"
    TIMEOUT = "timeout"
    TARGET = "target"
    PATIENCE = "patience"
    EXHAUSTED = "exhausted"  # every config of a finite space was tried
    NOTHING_LEFT = "nothing_left"  # the sampler has nothing more to offer
    INTERRUPTED = "interrupted"  # Ctrl-C
    LEASE_LOST = "lease_lost"  # another controller took the study over
    MAX_ROUNDS = "max_rounds"  # a looping pipeline ran all the rounds it was compiled with


class StopReason(str):
    """A stop reason: the message is the string itself, the kind rides along.

    It is a ``str`` so everything that showed or compared the message before (logs,
    ``summary.json``, ``reason.startswith(...)`` in user code) keeps working; code that
    acts on a reason reads :attr:`kind` instead of matching text.
    """

    kind: StopKind

    def __new__(cls, kind: StopKind, message: str) -> StopReason:
        reason = super().__new__(cls, message)
        reason.kind = kind
        return reason

    @property
    def message(self) -> str:
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"StopReason({self.kind.name}, {self.message!r})"

    def __reduce__(self) -> tuple[Any, ...]:  # pickles (to a worker, a KFP output) as itself
        return (StopReason, (self.kind, self.message))


INTERRUPTED = StopReason(StopKind.INTERRUPTED, "interrupted by the user")
