"""The built-in trial function: train one config with the spec's trainer, score it.

One object is cloudpickled to every local worker (and rebuilt from the spec by
``kubetune trial`` in a pod); the dataset and trainer are loaded once per process and
reused by every trial that process runs.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from kubetune.core.metrics import check_metric, for_split, search_metric, validation_key
from kubetune.core.spec import ExperimentSpec, parse_spec
from kubetune.core.trial import Reporter, TrialRequest
from kubetune.data import Dataset
from kubetune.errors import KubetuneError, SpecError
from kubetune.steps.starting_point import (
    INHERITED_FROM,
    RESUMED_FROM_STEP,
    TRAIN_ROWS,
    starting_point,
)
from kubetune.trainers import Trainer, compute_metrics, get_trainer
from kubetune.trainers.checkpoints import checkpoints_for

_log = logging.getLogger(__name__)

__all__ = [
    "INHERITED_FROM",
    "RESUMED_FROM_STEP",
    "TRAIN_ROWS",
    "BuiltinTrial",
    "check_pbt_trainer",
    "check_trainer",
    "evaluate_split",
    "objective_key",
    "trainer_metric",
]


def trainer_metric(spec: ExperimentSpec) -> str:
    """The trainer-level metric behind ``objective.metric`` (``val_accuracy`` -> ``accuracy``)."""
    return search_metric(spec.objective.metric)


def objective_key(spec: ExperimentSpec) -> str:
    """Name of the objective in a trial's metrics dict (always ``val_``-prefixed)."""
    return validation_key(spec.objective.metric)


def check_trainer(spec: ExperimentSpec, data: Dataset) -> Trainer:
    """The spec's trainer, checked against the data before any trial runs.

    Catches what would otherwise fail every trial one by one (and, since failed trials
    count towards ``max_trials``, use up a resumed study): an unknown trainer kind, an
    objective that does not fit the task, and whatever the trainer's own ``check`` refuses
    (a custom function that cannot be imported here, an sklearn fidelity without a
    ``budget_param``).
    """
    if spec.trainer is None:
        raise SpecError("trainer: this command needs a trainer section (e.g. kind: torch-mlp)")
    metric = trainer_metric(spec)
    try:
        check_metric(data.task, metric)
    except KubetuneError as exc:
        inferred = ""
        if spec.data is not None and spec.data.task == "auto":
            inferred = (
                f" (the task was inferred as {data.task} from the target's values;"
                " set data.task to classification or regression to choose)"
            )
        raise SpecError(f"objective.metric: {exc}{inferred}") from None
    trainer = get_trainer(spec.trainer.kind, spec.trainer.options)
    known = trainer.known_options
    unknown = sorted(set(spec.trainer.options) - known) if known is not None else []
    if unknown:
        raise SpecError(
            f"trainer.{unknown[0]}: unknown option for {spec.trainer.kind}"
            f" (known: kind, {', '.join(sorted(known or ()))})"
        )
    trainer.check(
        fidelity_param=spec.fidelity.trainer_param if spec.fidelity else None,
        base_dir=spec.base_dir,
    )
    trainer.check_data(data, [name for name in spec.search_space])
    if spec.strategy.name == "pbt":
        check_pbt_trainer(spec, trainer)
    return trainer


def check_pbt_trainer(spec: ExperimentSpec, trainer: Trainer) -> None:
    """pbt copies weights between members and changes hyperparameters while they train."""
    kind = spec.trainer.kind if spec.trainer else "?"
    if not trainer.can_resume:
        raise SpecError(
            f"strategy.name: pbt needs a trainer that saves and loads checkpoints"
            f" (torch-mlp, or a custom function with a resume_from parameter); {kind} does not"
        )
    structural = sorted(
        name
        for name, param in spec.search_space.items()
        if name in trainer.structural_params and getattr(param, "type", None) != "fixed"
    )
    if structural:
        raise SpecError(
            f"search_space.{structural[0]}: pbt keeps a member's architecture fixed while it"
            f" trains; give {', '.join(structural)} one fixed value (or search them with"
            " another strategy)"
        )
    if spec.fidelity is not None:
        raise SpecError(
            "fidelity: pbt trains each member in intervals of trainer.epochs and needs no"
            " scheduler; remove the fidelity section"
        )


def evaluate_split(model: Any, data: Dataset, split: str) -> dict[str, float]:
    X, y = getattr(data, f"X_{split}"), getattr(data, f"y_{split}")
    proba = model.predict_proba(X) if data.task == "classification" else None
    scores = compute_metrics(data.task, y, model.predict(X), proba, data.n_classes or None)
    return {for_split(k, split): float(v) for k, v in scores.items()}


class BuiltinTrial:
    def __init__(
        self, spec_data: dict[str, Any], base_dir: str, *, continues_rungs: bool = False
    ) -> None:
        # The spec travels as plain data: workers and pods rebuild and re-validate it.
        self.spec_data = spec_data
        self.base_dir = base_dir
        # The looping pipeline: every trial keeps a checkpoint, and a config promoted to a
        # higher rung (the same trial number) trains on from it.
        self.continues_rungs = continues_rungs
        self._cache: tuple[ExperimentSpec, Dataset, Trainer] | None = None

    @classmethod
    def from_spec(cls, spec: ExperimentSpec, *, continues_rungs: bool = False) -> BuiltinTrial:
        return cls(
            spec.model_dump(mode="json", exclude_none=True),
            str(spec.base_dir),
            continues_rungs=continues_rungs,
        )

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_cache": None}

    def load(self) -> tuple[ExperimentSpec, Dataset, Trainer]:
        if self._cache is None:
            from kubetune.steps.retrieve import retrieve

            spec = parse_spec(self.spec_data, base_dir=Path(self.base_dir))
            data = retrieve(spec)
            self._cache = (spec, data, check_trainer(spec, data))
        return self._cache

    def __call__(self, request: TrialRequest, reporter: Reporter) -> dict[str, float]:
        spec, data, trainer = self.load()
        if spec.fidelity is not None and spec.fidelity.kind == "data_fraction":
            return self._fit_on_fractions(spec, data, trainer, request, reporter)
        resumes = (
            trainer.inherits_weights
            or spec.strategy.name == "pbt"
            or (self.continues_rungs and trainer.can_continue)
        )
        store = checkpoints_for(request) if resumes else None
        if resumes and store is None:
            _log.warning(
                "trial %d: no artifact store or output folder for checkpoints; it trains from"
                " scratch and no other trial can start from it",
                request.number,
            )
        with tempfile.TemporaryDirectory(prefix="kubetune-start-") as tmp:
            start = starting_point(
                store, trainer, request, Path(tmp), continue_own=self.continues_rungs
            )
            model = start.fit(
                trainer,
                request.params,
                data,
                budget=request.budget,
                seed=request.seed,
                reporter=reporter,
                metric=trainer_metric(spec),
            )
        if store is not None:  # this trial may become a parent, or go on at the next rung
            store.save(request.number, model, step=request.budget)
        metrics = evaluate_split(model, data, "val")
        metrics.update(start.metrics())
        warned = getattr(model, "convergence_warnings", None)  # sklearn: kept in the record
        if isinstance(warned, int):
            metrics["convergence_warnings"] = float(warned)
        return metrics

    def _fit_on_fractions(
        self,
        spec: ExperimentSpec,
        data: Dataset,
        trainer: Trainer,
        request: TrialRequest,
        reporter: Reporter,
    ) -> dict[str, float]:
        from kubetune.steps.data_fraction import fit_on_fractions

        if spec.fidelity is None:
            raise ValueError("data_fraction training needs a fidelity section")
        metric = trainer_metric(spec)
        val_key = for_split(metric, "val")
        fit = fit_on_fractions(
            trainer,
            request.params,
            data,
            fidelity=spec.fidelity,
            seed=request.seed,
            data_seed=spec.seed,  # every trial sees the same rows at a given budget
            reporter=reporter,
            metric=metric,
            score=lambda model, full: evaluate_split(model, full, "val")[val_key],
        )
        metrics = evaluate_split(fit.model, data, "val")
        metrics[TRAIN_ROWS] = float(fit.rows_trained)
        return metrics
