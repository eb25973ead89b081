"""Step: train the final model with the best config."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from kubetune.core.attrs import PARAMS
from kubetune.core.spec import ExperimentSpec
from kubetune.core.strategies.pbt import pbt_lineage
from kubetune.data import Dataset
from kubetune.errors import SpecError
from kubetune.steps.trial import trainer_metric
from kubetune.trainers import NullReporter, TrainedModel, Trainer, get_trainer


def best_budget(spec: ExperimentSpec, best: FrozenTrial | None) -> int | None:
    """The budget the best trial used: its last reported step, or the fidelity maximum.

    None (the trainer's own default) without a fidelity or when the budget was a data
    fraction: the final model trains on every row."""
    if spec.fidelity is None or spec.fidelity.kind == "data_fraction":
        return None
    if best is not None and best.intermediate_values:
        return max(best.intermediate_values)
    return spec.fidelity.max


def pbt_schedule(
    spec: ExperimentSpec, study: optuna.Study, best: FrozenTrial
) -> list[dict[str, Any]]:
    """The structured params of each interval that led to ``best`` (strategy pbt)."""
    return [
        t.user_attrs.get(PARAMS) or spec.space.structure(t.params) for t in pbt_lineage(study, best)
    ]


def train_final(
    spec: ExperimentSpec,
    data: Dataset,
    params: dict[str, Any],
    budget: int | None,
    *,
    schedule: list[dict[str, Any]] | None = None,
) -> TrainedModel:
    """Retrain on train + validation with ``params`` and ``budget`` (no pruning).

    ``schedule`` (strategy pbt): train one interval per entry with that entry's params,
    each starting from the previous interval's weights, replaying the best member's
    hyperparameter schedule.
    """
    if spec.trainer is None:
        raise SpecError("trainer: this command needs a trainer section")
    trainer = get_trainer(spec.trainer.kind, spec.trainer.options)
    if schedule:
        return _replay(spec, trainer, data, schedule)
    return trainer.fit(
        params,
        data,
        budget=budget,
        seed=spec.seed,
        reporter=NullReporter(),
        metric=trainer_metric(spec),
        final=True,
    )


def _replay(
    spec: ExperimentSpec, trainer: Trainer, data: Dataset, schedule: list[dict[str, Any]]
) -> TrainedModel:
    metric = trainer_metric(spec)
    with tempfile.TemporaryDirectory(prefix="kubetune-pbt-") as tmp:
        previous: Path | None = None
        model: TrainedModel | None = None
        for i, params in enumerate(schedule):
            fit = trainer.fit if previous is None else functools.partial(trainer.fit_from, previous)
            model = fit(
                params,
                data,
                budget=None,
                seed=spec.seed,
                reporter=NullReporter(),
                metric=metric,
                final=True,
            )
            previous = Path(tmp) / str(i)
            model.save(previous)
            model.save_training_state(previous)  # as in the search: moments carry over
    if model is None:  # the schedule has at least one interval
        raise ValueError("an empty hyperparameter schedule trains nothing")
    return model
