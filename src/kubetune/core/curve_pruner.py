"""``fidelity.scheduler: curve``: stop a trial whose extrapolated learning curve is hopeless.

At each report (once the trial has ``min_points`` of them) the curve so far is extrapolated
to the full budget (:func:`kubetune.core.curves.extrapolate`) and the trial is stopped when
the probability that it ends better than the ``k``-th best completed trial is below
``threshold``. What it predicted is kept in the trial's user attrs (``CURVE_PREDICTION``),
so the record says why a trial was stopped, or how close it came.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from kubetune.core import optuna_compat as compat
from kubetune.core.attrs import CURVE_PREDICTION
from kubetune.core.curves import extrapolate

__all__ = ["CurveOptions", "CurvePruner"]


@dataclass(frozen=True)
class CurveOptions:
    """The ``fidelity.curve`` section (defaults documented in the README)."""

    min_points: int = 4  # never judge a curve on fewer reports
    threshold: float = 0.05  # prune when P(beat the reference) is below this
    k: int = 1  # the reference is the k-th best completed trial

    def __post_init__(self) -> None:
        # The spec validates these; the checks here guard direct (Python) use.
        if self.min_points < 3:
            raise ValueError(f"curve.min_points: must be >= 3 (got {self.min_points})")
        if not 0.0 < self.threshold < 0.5:
            raise ValueError(f"curve.threshold: must be in (0, 0.5) (got {self.threshold})")
        if self.k < 1:
            raise ValueError(f"curve.k: must be >= 1 (got {self.k})")


class CurvePruner(BasePruner):
    """Learning-curve extrapolation as an optuna pruner (single objective).

    ``max_resource`` is the step a trial's curve ends at (the fidelity's ``max``).
    """

    def __init__(self, max_resource: int, options: CurveOptions | None = None) -> None:
        if max_resource < 1:
            raise ValueError(f"max_resource: must be >= 1 (got {max_resource})")
        self.max_resource = max_resource
        self.options = options or CurveOptions()

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step >= self.max_resource:
            return False
        points = sorted(
            (s, v) for s, v in trial.intermediate_values.items() if math.isfinite(v) and s > 0
        )
        if len(points) < self.options.min_points:
            return False
        minimize = study.direction == StudyDirection.MINIMIZE
        reference = self._reference(study, minimize)
        if reference is None:
            return False  # nothing to beat yet
        best_so_far = min(v for _, v in points) if minimize else max(v for _, v in points)
        if (best_so_far <= reference) if minimize else (best_so_far >= reference):
            # Already better than the reference: every family (non-increasing) agrees.
            return False
        prediction = extrapolate(
            [s for s, _ in points],
            [v for _, v in points],
            at=self.max_resource,
            minimize=minimize,
        )
        if prediction is None:
            return False  # no family fitted: no evidence to stop on
        p_better = prediction.probability_better(reference)
        prune = p_better < self.options.threshold
        record: dict[str, Any] = {
            "step": step,
            "at": self.max_resource,
            "predicted": _finite(prediction.mean),
            "std": _finite(prediction.std),
            "reference": reference,
            "p_better": round(p_better, 6),
            "families": list(prediction.families),
            "pruned": prune,
        }
        compat.set_trial_user_attr(study, compat.trial_id(trial), CURVE_PREDICTION, record)
        return prune

    def _reference(self, study: optuna.Study, minimize: bool) -> float | None:
        """The ``k``-th best value of the completed trials, or None with fewer than ``k``."""
        values = [
            t.value
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.value is not None and math.isfinite(t.value)
        ]
        if len(values) < self.options.k:
            return None
        values.sort(reverse=not minimize)
        return float(values[self.options.k - 1])


def _finite(value: float) -> float | None:
    # user attrs are JSON in most storages: no NaN or infinity there
    return float(value) if math.isfinite(value) else None
