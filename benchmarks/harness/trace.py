"""What a run leaves behind: one record per trial, in the order trials finished."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import optuna
from optuna.trial import TrialState


@dataclass(frozen=True)
class TrialRecord:
    #: the loss at full fidelity; None when the trial was stopped early or failed
    value: float | None
    #: fidelity steps it ran (1 for a single-fidelity problem)
    cost: float
    #: wall seconds from the start of the run until the trial finished
    end_s: float


@dataclass
class RunTrace:
    problem: str
    peer: str
    seed: int
    trials: list[TrialRecord] = field(default_factory=list)
    wall_s: float = 0.0
    #: the cost of one full evaluation, so curves are drawn in full-evaluation equivalents
    full_cost: float = 1.0
    #: the cost the run's quality is read at (trials x full cost x the peer's budget factor)
    budget: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunTrace:
        trials = [TrialRecord(**t) for t in data.pop("trials")]
        return cls(trials=trials, **data)

    @property
    def total_cost(self) -> float:
        return sum(t.cost for t in self.trials)


def from_study(
    study: optuna.Study,
    *,
    problem: str,
    peer: str,
    seed: int,
    fidelity: bool,
    full_cost: float,
    started: datetime,
) -> RunTrace:
    """A trace from an optuna study (kubetune's runs keep theirs in one too).

    A trial's cost is the steps it reported (fidelity) or 1; only a trial that completed
    counts as a candidate. Finish times come from the study's own timestamps (local time, as
    ``started``: ``datetime.now()`` taken when the run began, start-up included).
    """
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    trials.sort(key=lambda t: t.datetime_complete or t.datetime_start or datetime.min)
    records = []
    for t in trials:
        value = t.value if t.state == TrialState.COMPLETE else None
        if value is not None and not math.isfinite(value):
            value = None
        cost = float(len(t.intermediate_values)) if fidelity else 1.0
        end = t.datetime_complete
        end_s = (end - started).total_seconds() if end is not None else 0.0
        records.append(TrialRecord(value=value, cost=max(cost, 1.0), end_s=end_s))
    return RunTrace(problem=problem, peer=peer, seed=seed, trials=records, full_cost=full_cost)
