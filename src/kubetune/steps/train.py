"""Step: train the final model with the best config."""

from __future__ import annotations

from typing import Any

from optuna.trial import FrozenTrial

from kubetune.core.spec import ExperimentSpec
from kubetune.data import Dataset
from kubetune.errors import SpecError
from kubetune.steps.trial import trainer_metric
from kubetune.trainers import NullReporter, TrainedModel, get_trainer


def best_budget(spec: ExperimentSpec, best: FrozenTrial | None) -> int | None:
    """The budget the best trial used: its last reported step, or the fidelity maximum.

    None (the trainer's own default) without a fidelity or when the budget was a data
    fraction: the final model trains on every row."""
    if spec.fidelity is None or spec.fidelity.kind == "data_fraction":
        return None
    if best is not None and best.intermediate_values:
        return max(best.intermediate_values)
    return spec.fidelity.max


def train_final(
    spec: ExperimentSpec, data: Dataset, params: dict[str, Any], budget: int | None
) -> TrainedModel:
    """Retrain on train + validation with ``params`` and ``budget`` (no pruning)."""
    if spec.trainer is None:
        raise SpecError("trainer: this command needs a trainer section")
    trainer = get_trainer(spec.trainer.kind, spec.trainer.options)
    return trainer.fit(
        params,
        data,
        budget=budget,
        seed=spec.seed,
        reporter=NullReporter(),
        metric=trainer_metric(spec),
        final=True,
    )
