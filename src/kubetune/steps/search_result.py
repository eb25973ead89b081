"""What a search hands to the final steps: the best config and why the search stopped.

Both pipeline forms produce it (the controller's ``search`` task, the looping pipeline's
last ``record``) as one JSON pipeline parameter, so ``train`` and ``push`` are the same
tasks in both.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from kubetune.core.attrs import METRICS, PARAMS, RETRIED, SCHEDULER, STRATEGY
from kubetune.core.spec import ExperimentSpec
from kubetune.core.stop_reason import StopReason
from kubetune.errors import KubetuneError

__all__ = ["SearchResult", "search_result"]


@dataclass(frozen=True)
class SearchResult:
    best_params: dict[str, Any] | None
    best_value: float | None
    best_trial: int | None
    budget: int | None
    validation_metrics: dict[str, float] = field(default_factory=dict)
    stop_reason: str = ""
    stop_kind: str = ""
    completed: int = 0
    pruned: int = 0
    failed: int = 0
    strategy: str = ""
    scheduler: str = ""
    elapsed_s: float = 0.0  # wall time of the search (all rounds, for the looping form)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SearchResult:
        try:
            return cls(**json.loads(text))
        except (ValueError, TypeError) as exc:
            raise KubetuneError(f"search result: not a kubetune search result ({exc})") from None


def search_result(
    spec: ExperimentSpec, study: optuna.Study, reason: StopReason | None, elapsed_s: float = 0.0
) -> SearchResult:
    trials = study.get_trials(deepcopy=False)
    try:
        best = study.best_trial
    except ValueError:  # no completed trial
        best = None
    params = None
    if best is not None:
        stored = best.user_attrs.get(PARAMS)
        params = stored if isinstance(stored, dict) else spec.space.structure(best.params)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    return SearchResult(
        best_params=params,
        best_value=best.value if best is not None else None,
        best_trial=best.number if best is not None else None,
        budget=_budget(spec, best),
        validation_metrics=dict(best.user_attrs.get(METRICS, {})) if best is not None else {},
        stop_reason=reason.message if reason is not None else "",
        stop_kind=reason.kind.value if reason is not None else "",
        completed=sum(t.state == TrialState.COMPLETE for t in trials),
        pruned=sum(t.state == TrialState.PRUNED for t in trials),
        failed=sum(not t.user_attrs.get(RETRIED) for t in failed),
        strategy=str(study.user_attrs.get(STRATEGY, "")),
        scheduler=str(study.user_attrs.get(SCHEDULER, "")),
        elapsed_s=round(elapsed_s, 3),
    )


def _budget(spec: ExperimentSpec, best: optuna.trial.FrozenTrial | None) -> int | None:
    """``steps.train.best_budget`` (the best trial's last reported step, else the fidelity
    maximum) without importing the trainers: record tasks start faster."""
    if spec.fidelity is None:
        return None
    if best is not None and best.intermediate_values:
        return max(best.intermediate_values)
    return spec.fidelity.max
