"""Evaluation metrics shared by every trainer, the search loop and the evaluation step.

Names are plain (``accuracy``, ``rmse``); a ``val_`` or ``test_`` prefix is accepted wherever
a name is looked up, so ``val_accuracy`` and ``accuracy`` mean the same metric (see
:mod:`kubetune.core.metrics`, where names and directions are defined).
scikit-learn is imported lazily: ``import kubetune.trainers`` stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Names, directions and prefixes live in the core (the spec and the loop need them too).
from kubetune.core.metrics import (
    METRICS_BY_TASK,
    PROBA_METRICS,
    Direction,
    canonical_metric,
    check_metric,
    metric_direction,
)
from kubetune.errors import InvalidConfigError, KubetuneError

__all__ = [
    "METRICS_BY_TASK",
    "PROBA_METRICS",
    "Direction",
    "canonical_metric",
    "check_metric",
    "compute_metric",
    "compute_metrics",
    "count_classes",
    "metric_direction",
]


def count_classes(class_labels: Sequence[str], *ys: np.ndarray) -> int:
    """Number of classes: the declared labels, else one more than the largest class index."""
    if class_labels:
        return len(class_labels)
    return max((int(np.max(y)) + 1 for y in ys if len(y)), default=0)


def compute_metric(
    task: str,
    name: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray | None = None,
    n_classes: int | None = None,
) -> float:
    """One metric. A probability metric without ``proba`` raises InvalidConfigError."""
    base = check_metric(task, name)
    y_true = np.asarray(y_true).reshape(-1)
    y_pred = np.asarray(y_pred).reshape(-1)
    if task == "regression":
        return _regression(base, y_true.astype(np.float64), y_pred.astype(np.float64))
    if base in PROBA_METRICS:
        if proba is None:
            raise InvalidConfigError(
                f"metric {name!r} needs class probabilities, but the model has no predict_proba"
            )
        return _from_proba(base, y_true, np.asarray(proba), n_classes)
    return _from_labels(base, y_true, y_pred)


def compute_metrics(
    task: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray | None = None,
    n_classes: int | None = None,
) -> dict[str, float]:
    """Every metric of ``task`` that the inputs allow (probability metrics need ``proba``)."""
    names = METRICS_BY_TASK.get(task)
    if names is None:
        raise KubetuneError(f"unknown task {task!r}; valid tasks: {', '.join(METRICS_BY_TASK)}")
    return {
        name: compute_metric(task, name, y_true, y_pred, proba, n_classes)
        for name in names
        if proba is not None or name not in PROBA_METRICS
    }


def _regression(name: str, y_true: np.ndarray, y_pred: np.ndarray) -> float:
    err = y_pred - y_true
    if name == "rmse":
        return float(np.sqrt(np.mean(err**2)))
    if name == "mae":
        return float(np.mean(np.abs(err)))
    ss_tot = float(np.sum((y_true - y_true.mean()) ** 2))
    ss_res = float(np.sum(err**2))
    if ss_tot == 0.0:
        # Constant target: sklearn's convention (perfect fit 1.0, anything else 0.0).
        return 1.0 if ss_res == 0.0 else 0.0
    return 1.0 - ss_res / ss_tot


def _from_labels(name: str, y_true: np.ndarray, y_pred: np.ndarray) -> float:
    if name == "accuracy":
        return float(np.mean(y_true == y_pred))
    from sklearn.metrics import f1_score

    return float(f1_score(y_true, y_pred, average="macro", zero_division=0))


def _from_proba(name: str, y_true: np.ndarray, proba: np.ndarray, n_classes: int | None) -> float:
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim == 1:  # positive-class probabilities of a binary problem
        proba = np.column_stack([1.0 - proba, proba])
    if not np.all(np.isfinite(proba)):
        return float("nan")  # non-finite objective: the trial is recorded as failed
    k = max(int(n_classes or 0), proba.shape[1])
    labels = np.arange(k)
    # float32 softmax rows can be a hair off 1; log_loss expects normalised rows.
    proba = np.clip(proba, 1e-15, 1.0)
    proba = proba / proba.sum(axis=1, keepdims=True)

    from sklearn.metrics import log_loss, roc_auc_score

    if name == "log_loss":
        return float(log_loss(y_true, proba, labels=labels))
    if k == 2:
        if len(np.unique(y_true)) < 2:
            return float("nan")
        return float(roc_auc_score(y_true, proba[:, 1]))
    # One-vs-rest macro average over the classes that have both positives and negatives
    # (a small validation split may lack a class; sklearn's ovr would raise then).
    scores = [
        roc_auc_score(y_true == c, proba[:, c])
        for c in range(k)
        if 0 < int(np.sum(y_true == c)) < len(y_true)
    ]
    return float(np.mean(scores)) if scores else float("nan")
