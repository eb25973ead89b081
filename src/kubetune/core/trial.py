"""The trial contract: what one trial receives and what it gives back.

One trial = one config + one budget. The same contract is used by an in-process objective
(``kubetune.tune``), a local worker process and (later) a Kubernetes pod running
``kubetune trial``.
"""

from __future__ import annotations

import enum
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from optuna import TrialPruned

__all__ = [
    "ExitCode",
    "Reporter",
    "TrialFailure",
    "TrialOutcome",
    "TrialPruned",
    "TrialRequest",
    "TrialStatus",
]


class ExitCode(enum.IntEnum):
    """Exit codes of ``kubetune trial``; anything not listed is an infrastructure failure."""

    OK = 0  # completed or pruned: the result file says which
    USAGE = 2  # bad command line or unreadable trial request
    INVALID_CONFIG = 3  # the config cannot be trained: never retried
    TRIAL_FAILED = 4  # the trial code raised or scored NaN: recorded, not retried


class TrialStatus(enum.StrEnum):
    COMPLETED = "completed"
    PRUNED = "pruned"
    FAILED = "failed"


class TrialFailure(enum.StrEnum):
    """Why a trial failed. Only ``INFRASTRUCTURE`` and ``CANCELLED`` trials are retried."""

    INVALID_CONFIG = "invalid_config"  # the trainer refused the config
    ERROR = "error"  # the trial code raised
    NOT_FINITE = "not_finite"  # the objective was NaN or infinite
    DEADLINE = "deadline"  # ran past the per-trial deadline
    INFRASTRUCTURE = "infrastructure"  # worker/pod died, controller died mid-trial
    CANCELLED = "cancelled"  # the run stopped (timeout, Ctrl-C) while the trial ran

    @property
    def retryable(self) -> bool:
        # neither is the config's fault: the trial runs again (a cancelled one on the next run)
        return self in (TrialFailure.INFRASTRUCTURE, TrialFailure.CANCELLED)


@dataclass(frozen=True)
class TrialRequest:
    """Everything a trial needs, serialisable as JSON."""

    study: str
    number: int
    params: dict[str, Any]
    seed: int
    budget: int | None = None  # maximum fidelity (e.g. epochs) this trial may use
    attempt: int = 1
    deadline_s: float | None = None
    output_dir: str | None = None  # where the trial may write checkpoints

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialRequest:
        return cls(**data)


@dataclass
class TrialOutcome:
    """What a trial gives back."""

    status: TrialStatus
    value: float | None = None  # the objective metric
    metrics: dict[str, float] = field(default_factory=dict)
    curve: list[tuple[int, float]] = field(default_factory=list)  # (step, value) reports
    duration_s: float = 0.0
    failure: TrialFailure | None = None
    message: str = ""
    checkpoint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        data["failure"] = self.failure.value if self.failure else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialOutcome:
        data = dict(data)
        data["status"] = TrialStatus(data["status"])
        data["failure"] = TrialFailure(data["failure"]) if data.get("failure") else None
        data["curve"] = [(int(s), float(v)) for s, v in data.get("curve", [])]
        return cls(**data)

    @classmethod
    def failed(cls, failure: TrialFailure, message: str, **kw: Any) -> TrialOutcome:
        return cls(status=TrialStatus.FAILED, failure=failure, message=message, **kw)


def is_finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


class Reporter(Protocol):
    """Handed to trial code to report intermediate values (one per budget step).

    ``report`` raises :class:`optuna.TrialPruned` when the scheduler stops the trial early;
    trainers let it propagate.
    """

    def report(self, step: int, value: float) -> None: ...
