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
    "REQUEST_KIND",
    "RESULT_KIND",
    "SCHEMA_VERSION",
    "ExitCode",
    "ReportChannel",
    "Reporter",
    "TrialFailure",
    "TrialOutcome",
    "TrialPruned",
    "TrialRequest",
    "TrialStatus",
    "UnusableRequestError",
    "outcome_from_exit",
    "process_death",
]

# The request and result files are a contract between a controller and trials that may run
# another kubetune release (a pod started from an older image): both carry a kind and a
# schema version; a reader refuses a newer major version instead of misreading it.
REQUEST_KIND = "kubetune.dev/TrialRequest"
RESULT_KIND = "kubetune.dev/TrialResult"
SCHEMA_VERSION = 1


class UnusableRequestError(ValueError):
    """A trial request or result that this kubetune cannot read (wrong kind or version)."""


def _check_schema(data: dict[str, Any], kind: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise UnusableRequestError(f"expected a JSON object, got {type(data).__name__}")
    data = dict(data)
    # Files written before the schema was versioned carry neither field: they are version 1.
    found_kind = data.pop("kind", kind)
    version = data.pop("version", 1)
    if found_kind != kind:
        raise UnusableRequestError(f"expected kind {kind!r}, got {found_kind!r}")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise UnusableRequestError(f"invalid schema version {version!r}")
    if version > SCHEMA_VERSION:
        raise UnusableRequestError(
            f"schema version {version} is newer than this kubetune reads ({SCHEMA_VERSION});"
            " run the same kubetune version for the controller and the trials"
        )
    return data


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
class ReportChannel:
    """Where a trial outside the controller's process sends its intermediate values.

    ``url`` is the controller's report endpoint; ``token`` authenticates this run's trials
    (it is never printed). A trial that cannot reach it goes on without pruning.
    """

    url: str
    token: str

    def __repr__(self) -> str:  # keep the token out of logs and tracebacks
        return f"ReportChannel(url={self.url!r}, token='***')"


@dataclass(frozen=True)
class TrialRequest:
    """Everything a trial needs, serialisable as JSON (schema ``kubetune.dev/TrialRequest`` v1).

    ``spec`` and ``spec_dir`` are filled in by executors that run the trial in another
    process (the spec travels as data, so a pod needs no copy of the spec file);
    ``report`` says how to reach the controller for prune decisions.
    """

    study: str
    number: int
    params: dict[str, Any]
    seed: int
    budget: int | None = None  # the fidelity (e.g. epochs) this trial may use, at most
    attempt: int = 1
    deadline_s: float | None = None  # counted from when the trial's code starts
    output_dir: str | None = None  # where the trial may write checkpoints
    spec: dict[str, Any] | None = None  # the experiment spec as validated data
    spec_dir: str | None = None  # the spec's folder: relative data paths, custom trainers
    report: ReportChannel | None = None
    # The trial artifact store's URI (see ``kubetune.artifacts``): checkpoints and files
    # live under ``<artifacts>/studies/<study>/trials/<number>/``.
    artifacts: str | None = None
    # On a retry (a trial of its own): the number of the config's first trial, whose
    # artifact folder every attempt shares, so a retry finds the checkpoint a failed
    # attempt saved.
    retry_of: int | None = None
    # The trial whose checkpoint this one may start from (an evolution child's parent).
    parent: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        # Left out when unset, so a request without them stays readable by an older trial.
        for optional in ("report", "artifacts", "retry_of", "parent"):
            if data[optional] is None:
                data.pop(optional)
        return {"kind": REQUEST_KIND, "version": SCHEMA_VERSION, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialRequest:
        data = _check_schema(data, REQUEST_KIND)
        problems = _field_problems(data, _REQUEST_FIELDS)
        report = data.get("report")
        if report is not None:
            if not isinstance(report, dict):
                problems.append("report: expected an object with url and token")
            else:
                problems += [f"report.{p}" for p in _field_problems(report, _REPORT_FIELDS)]
        if problems:
            raise UnusableRequestError("; ".join(problems))
        channel = ReportChannel(**report) if report is not None else None
        return cls(**{**data, "report": channel})


# The request schema, checked field by field so a bad request names what is wrong:
# name -> (accepted types, required).
_OPTIONAL_INT = (int, type(None))
_REQUEST_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "study": ((str,), True),
    "number": ((int,), True),
    "params": ((dict,), True),
    "seed": ((int,), True),
    "budget": (_OPTIONAL_INT, False),
    "attempt": ((int,), False),
    "deadline_s": ((int, float, type(None)), False),
    "output_dir": ((str, type(None)), False),
    "spec": ((dict, type(None)), False),
    "spec_dir": ((str, type(None)), False),
    "report": ((dict, type(None)), False),
    "artifacts": ((str, type(None)), False),
    "retry_of": (_OPTIONAL_INT, False),
    "parent": (_OPTIONAL_INT, False),
}
_REPORT_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "url": ((str,), True),
    "token": ((str,), True),
}


def _field_problems(
    data: dict[str, Any], fields: dict[str, tuple[tuple[type, ...], bool]]
) -> list[str]:
    problems = [
        f"{name}: missing"
        for name, (_, required) in fields.items()
        if required and name not in data
    ]
    # repr() for a name a line break or control character would split or garble
    problems += [
        f"{name if name.isprintable() else repr(name)}: unknown field"
        for name in data
        if name not in fields
    ]
    for name, value in data.items():
        if name not in fields:
            continue
        types = fields[name][0]
        if isinstance(value, bool) or not isinstance(value, types):
            wanted = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            problems.append(f"{name}: expected {wanted}, got {type(value).__name__}")
    return problems


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
    # Set when reports could not reach the controller: the trial ran without pruning.
    pruning_off: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        data["failure"] = self.failure.value if self.failure else None
        return {"kind": RESULT_KIND, "version": SCHEMA_VERSION, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialOutcome:
        data = _check_schema(data, RESULT_KIND)
        try:
            data["status"] = TrialStatus(data["status"])
            data["failure"] = TrialFailure(data["failure"]) if data.get("failure") else None
            data["curve"] = [(int(s), float(v)) for s, v in data.get("curve", [])]
            return cls(**data)
        except (KeyError, TypeError, ValueError) as exc:
            raise UnusableRequestError(f"malformed trial result: {exc}") from None

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


def outcome_from_exit(code: int, result: TrialOutcome | None, detail: str = "") -> TrialOutcome:
    """What a finished ``kubetune trial`` process means, from its exit code and result file.

    The controller side of the exit-code contract, shared by every executor that runs the
    entry point in another process or pod. ``detail`` (the tail of the trial's log) is added
    to messages of trials that left no result. A negative ``code`` is a signal number.
    """
    suffix = f": {detail.strip()}" if detail.strip() else ""
    if result is not None and code in (ExitCode.OK, ExitCode.INVALID_CONFIG, ExitCode.TRIAL_FAILED):
        return result
    if code == ExitCode.INVALID_CONFIG:
        return TrialOutcome.failed(TrialFailure.INVALID_CONFIG, f"invalid config (exit 3){suffix}")
    if code == ExitCode.TRIAL_FAILED:
        return TrialOutcome.failed(TrialFailure.ERROR, f"the trial failed (exit 4){suffix}")
    if code == ExitCode.USAGE:
        # The trial could not read what the controller sent: a retry would read it again.
        return TrialOutcome.failed(
            TrialFailure.ERROR, f"the trial refused its request (exit 2){suffix}"
        )
    if code == ExitCode.OK:
        return TrialOutcome.failed(
            TrialFailure.INFRASTRUCTURE, f"the trial exited 0 without a result file{suffix}"
        )
    failure, what = process_death(code)
    return TrialOutcome.failed(failure, f"{what}{suffix}")


def process_death(code: int, runner: str = "trial process") -> tuple[TrialFailure, str]:
    """Why a trial's process ended without a result, from its exit status.

    Killed by a signal (negative here, or 128+N from a container runtime: OOM, eviction,
    a node going away) is infrastructure, retried. Any other code means the process ended
    itself (``os._exit`` in trial code, an interpreter that cannot even import): running
    the same thing again would end the same way, so it is the trial's failure.
    """
    signal_number = -code if code < 0 else code - 128 if 128 < code < 160 else None
    if signal_number is not None:
        how = f"killed by signal {signal_number}" + (f", exit code {code}" if code > 0 else "")
        hint = ", out of memory?" if signal_number == 9 else ""  # the OOM killer's signal
        return TrialFailure.INFRASTRUCTURE, f"{runner} died ({how}{hint})"
    return TrialFailure.ERROR, f"the trial code ended the {runner} (exit code {code})"
