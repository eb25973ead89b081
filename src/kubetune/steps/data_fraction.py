"""Data-fraction fidelity (``fidelity.kind: data_fraction``): train on growing subsets.

A trial with budget ``max`` trains its config on ``b / max`` of the training rows for each
rung ``b`` of the schedule (``min``, ``min * reduction_factor``, ... up to ``max``) and
reports the validation metric at step ``b`` after each. The scheduler can stop it at any
rung, so a weak config costs a fraction of the rows; one that survives costs about
``1 / (1 - 1/reduction_factor)`` trainings on all rows. Any trainer works: the budget never
reaches it (it trains with its own default epochs or iterations).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from kubetune.core.spec import FidelitySpec
from kubetune.core.trial import Reporter, TrialPruned
from kubetune.data import Dataset
from kubetune.data.subsets import subset_indices
from kubetune.errors import InvalidConfigError
from kubetune.trainers import TrainedModel, Trainer

__all__ = ["FractionFit", "fit_on_fractions", "rung_budgets", "subset"]


def rung_budgets(fidelity: FidelitySpec) -> list[int]:
    """The budgets a trial reports at: the successive-halving rungs up to ``max``."""
    budgets: list[int] = []
    budget = fidelity.min
    while budget < fidelity.max:
        budgets.append(budget)
        budget *= fidelity.reduction_factor
    return [*budgets, fidelity.max]


def subset(data: Dataset, fraction: float, *, seed: int) -> Dataset:
    """``data`` with only ``fraction`` of its training rows (validation and test untouched)."""
    rows = subset_indices(
        data.y_train, fraction, seed=seed, stratified=data.task == "classification"
    )
    return dataclasses.replace(data, X_train=data.X_train[rows], y_train=data.y_train[rows])


@dataclasses.dataclass(frozen=True)
class FractionFit:
    model: TrainedModel
    rows_trained: int  # training rows summed over every fit of the trial


class _LastValue:
    """Keeps the inner fit's last report: one value per rung goes to the scheduler."""

    def __init__(self) -> None:
        self.value: float | None = None

    def report(self, step: int, value: float) -> None:
        self.value = value


def fit_on_fractions(
    trainer: Trainer,
    params: dict[str, Any],
    data: Dataset,
    *,
    fidelity: FidelitySpec,
    seed: int,
    data_seed: int,
    reporter: Reporter,
    metric: str,
    score: Any,
) -> FractionFit:
    """Fit at each rung, reporting the validation metric there (the reporter may prune).

    ``score(model, data)`` gives the metric when the trainer reported none itself.
    ``data_seed`` fixes which rows each fraction holds: the same for every trial. A fit
    that fails on a fraction below 1 is skipped (no report at that rung); on all the rows
    its error is the trial's.
    """
    model: TrainedModel | None = None
    rows = 0
    for budget in rung_budgets(fidelity):
        part = subset(data, budget / fidelity.max, seed=data_seed)
        last = _LastValue()
        rows += len(part.y_train)
        try:
            model = trainer.fit(params, part, budget=None, seed=seed, reporter=last, metric=metric)
        except (TrialPruned, InvalidConfigError):
            raise
        except Exception:
            if budget == fidelity.max:
                raise
            # Some configs need more rows than a small fraction has (kNN with more
            # neighbours than rows): such a config is judged at the next rung instead.
            continue
        value = last.value if last.value is not None else score(model, data)
        reporter.report(budget, value)
    if model is None:  # rung_budgets is never empty
        raise ValueError("no budget rung to train on")
    return FractionFit(model, rows)
