"""Metric names, their directions and their split prefixes: one place for all of them.

A trainer computes plain names (``accuracy``, ``rmse``); a trial reports them on the
validation split as ``val_<name>``, the evaluation step on the test split as ``test_<name>``.
The spec's ``objective.metric`` may use either spelling. Nothing here computes a metric
(that lives with the trainers, which may import scikit-learn).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from kubetune.errors import KubetuneError, SpecError

__all__ = [
    "METRICS_BY_TASK",
    "PROBA_METRICS",
    "SPLIT_PREFIXES",
    "TEST",
    "TRAIN",
    "VAL",
    "Direction",
    "canonical_metric",
    "check_metric",
    "for_split",
    "infer_direction",
    "metric_direction",
    "search_metric",
    "unprefixed",
    "validation_key",
]

Direction = Literal["maximize", "minimize"]

# The metrics built-in trainers compute, per task.
METRICS_BY_TASK: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy", "f1", "log_loss", "roc_auc"),
    "regression": ("rmse", "mae", "r2"),
}

# Directions of the built-in metrics (a ``val_``/``test_`` prefix is allowed when looking up).
_BUILTIN: dict[str, Direction] = {
    "accuracy": "maximize",
    "f1": "maximize",
    "log_loss": "minimize",
    "roc_auc": "maximize",
    "rmse": "minimize",
    "mae": "minimize",
    "r2": "maximize",
}

# Further common names whose direction is known, so a spec or ``tune(metric=...)`` for a
# custom objective may leave ``objective.direction`` out.
_INFERRED: dict[str, Direction] = {
    **_BUILTIN,
    "auc": "maximize",
    "precision": "maximize",
    "recall": "maximize",
    "loss": "minimize",
    "mse": "minimize",
    "error": "minimize",
}

# Metrics computed from class probabilities rather than from hard predictions.
PROBA_METRICS = frozenset({"log_loss", "roc_auc"})

VAL, TEST, TRAIN = "val_", "test_", "train_"
SPLIT_PREFIXES = (VAL, TEST, TRAIN)
# Spellings people use for a split in free-form metric names (direction inference only).
_LOOSE_PREFIX = re.compile(r"^(val|valid|validation|test|train)_")


def for_split(metric: str, split: str) -> str:
    """``metric`` on another split: ``for_split("val_accuracy", "test")`` -> ``test_accuracy``."""
    for prefix in SPLIT_PREFIXES:
        if metric.startswith(prefix):
            metric = metric.removeprefix(prefix)
            break
    return f"{split}_{metric}"


def unprefixed(metrics: Mapping[str, float], prefix: str) -> dict[str, float]:
    """``{"val_accuracy": 0.9}`` -> ``{"accuracy": 0.9}`` for ``prefix="val_"``."""
    return {k.removeprefix(prefix): v for k, v in metrics.items()}


def canonical_metric(name: str) -> str:
    """``val_accuracy`` -> ``accuracy``; names no built-in trainer computes raise."""
    base = name.removeprefix(VAL) if name.startswith(VAL) else name.removeprefix(TEST)
    if base not in _BUILTIN:
        raise KubetuneError(
            f"unknown metric {name!r}; valid metrics: {', '.join(sorted(_BUILTIN))}"
        )
    return base


def metric_direction(name: str) -> Direction:
    """Whether a larger (``maximize``) or smaller (``minimize``) built-in metric is better."""
    return _BUILTIN[canonical_metric(name)]


def infer_direction(metric: str) -> Direction | None:
    """The direction of a free-form metric name when it is a well-known one, else None."""
    return _INFERRED.get(_LOOSE_PREFIX.sub("", metric))


def check_metric(task: str, name: str) -> str:
    """Canonical name of ``name``, or KubetuneError when it does not fit ``task``."""
    base = canonical_metric(name)
    valid = METRICS_BY_TASK.get(task)
    if valid is None:
        raise KubetuneError(f"unknown task {task!r}; valid tasks: {', '.join(METRICS_BY_TASK)}")
    if base not in valid:
        raise KubetuneError(
            f"metric {name!r} does not apply to {task}; valid metrics: {', '.join(valid)}"
        )
    return base


def search_metric(objective_metric: str) -> str:
    """The built-in metric behind ``objective.metric`` (``val_accuracy`` -> ``accuracy``).

    Only a validation metric may drive a search: tuning on the test split would leak it.
    """
    if objective_metric.startswith((TEST, TRAIN)):
        raise SpecError(
            f"objective.metric: '{objective_metric}' cannot drive the search; use a validation"
            f" metric such as {VAL}{objective_metric.split('_', 1)[1]}"
        )
    try:
        return canonical_metric(objective_metric)
    except KubetuneError as exc:  # a typo would otherwise fail every trial, one by one
        raise SpecError(f"objective.metric: {exc}") from None


def validation_key(objective_metric: str) -> str:
    """Name of the objective in a trial's metrics (``accuracy`` -> ``val_accuracy``)."""
    return VAL + search_metric(objective_metric)
