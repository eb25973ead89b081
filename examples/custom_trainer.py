"""A user-written trainer for kubetune's ``custom`` trainer kind (see custom-trainer.yaml).

Softmax (multinomial logistic) regression in plain numpy, trained with mini-batch gradient
descent. It shows the whole contract of ``kubetune.trainers.custom``:

- kubetune calls ``train(params=..., data=..., budget=..., reporter=..., seed=..., final=...,
  metric=...)`` with keyword arguments; ``budget`` is the number of epochs;
- during the search (``final`` False) it trains on the training split and reports the
  validation ``metric`` once per epoch with ``reporter.report(epoch, value)``, letting
  ``optuna.TrialPruned`` (raised by ``report`` when the scheduler stops it) propagate;
- for the final model (``final`` True) it trains on train + validation and reports nothing;
- a config that cannot work raises ``InvalidConfigError`` (recorded, never retried);
- the returned object has ``predict``, ``predict_proba`` and ``save(directory)``; the
  module-level ``load(directory)`` reads a saved model back. Weights are stored as a
  ``.npz`` of plain arrays, read with ``allow_pickle=False``;
- optional checkpoint hook: the ``resume_from`` parameter (a folder a model of this
  function saved, or None) lets a trial start from those weights, which is what
  ``strategy: pbt`` and ``inherit: true`` with ``strategy: evolution`` need.

kubetune imports this module from the spec file's folder, in the controller and in every
worker process: ``kubetune run examples/custom-trainer.yaml``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from kubetune.core.trial import Reporter
from kubetune.data import Dataset
from kubetune.errors import InvalidConfigError
from kubetune.trainers.metrics import compute_metric

WEIGHTS_FILE = "softmax.npz"
META_FILE = "softmax.json"
DEFAULT_EPOCHS = 20
PARAMS = ("lr", "l2", "batch_size")


class SoftmaxModel:
    """Standardisation plus a linear layer and a softmax."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, W: np.ndarray, b: np.ndarray) -> None:
        self.mean, self.std, self.W, self.b = mean, std, W, b

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        logits = ((np.asarray(X, dtype=np.float64) - self.mean) / self.std) @ self.W + self.b
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return np.asarray(exp / exp.sum(axis=1, keepdims=True))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.predict_proba(X).argmax(axis=1), dtype=np.int64)

    def save(self, directory: Path) -> list[Path]:
        weights, meta = Path(directory) / WEIGHTS_FILE, Path(directory) / META_FILE
        np.savez(weights, mean=self.mean, std=self.std, W=self.W, b=self.b)
        meta.write_text(json.dumps({"format": 1, "classes": int(self.W.shape[1])}) + "\n")
        return [weights, meta]


def load(directory: Path) -> SoftmaxModel:
    with np.load(Path(directory) / WEIGHTS_FILE, allow_pickle=False) as arrays:
        return SoftmaxModel(arrays["mean"], arrays["std"], arrays["W"], arrays["b"])


def _settings(params: dict[str, Any]) -> tuple[float, float, int]:
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise InvalidConfigError(f"unknown param(s) {unknown}; valid params: {list(PARAMS)}")
    lr, l2 = float(params.get("lr", 0.1)), float(params.get("l2", 0.0))
    batch_size = int(params.get("batch_size", 32))
    if lr <= 0 or l2 < 0 or batch_size < 1:
        raise InvalidConfigError(f"need lr > 0, l2 >= 0 and batch_size >= 1, got {params}")
    return lr, l2, batch_size


def train(
    *,
    params: dict[str, Any],
    data: Dataset,
    budget: int | None,
    reporter: Reporter,
    seed: int,
    final: bool,
    metric: str,
    resume_from: Path | None = None,
) -> SoftmaxModel:
    if data.task != "classification":
        raise InvalidConfigError("this softmax regression only fits classification data")
    lr, l2, batch_size = _settings(params)
    epochs = budget or DEFAULT_EPOCHS
    X, y = data.X_train, data.y_train
    if final:
        X, y = np.concatenate([X, data.X_val]), np.concatenate([y, data.y_val])
    X = np.asarray(X, dtype=np.float64)
    n_classes = data.n_classes or int(y.max()) + 1
    mean, std = X.mean(axis=0), X.std(axis=0)
    std[std < 1e-12] = 1.0
    rng = np.random.default_rng(seed)
    model = SoftmaxModel(
        mean, std, rng.normal(0.0, 0.01, (X.shape[1], n_classes)), np.zeros(n_classes)
    )
    if resume_from is not None:  # a pbt member or evolution child: start from those weights
        saved = load(resume_from)
        if saved.W.shape == model.W.shape:  # another trial's model: use it only if it fits
            model = saved
    Z, onehot = (X - mean) / std, np.eye(n_classes)[y]
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(Z))
        for start in range(0, len(Z), batch_size):
            idx = order[start : start + batch_size]
            logits = Z[idx] @ model.W + model.b
            logits -= logits.max(axis=1, keepdims=True)
            proba = np.exp(logits)
            proba /= proba.sum(axis=1, keepdims=True)
            grad = (proba - onehot[idx]) / len(idx)
            model.W -= lr * (Z[idx].T @ grad + l2 * model.W)
            model.b -= lr * grad.sum(axis=0)
        if not np.all(np.isfinite(model.W)):
            raise InvalidConfigError(f"training diverged at epoch {epoch} (lr={lr:g} too high)")
        if not final:
            value = compute_metric(
                data.task,
                metric,
                data.y_val,
                model.predict(data.X_val),
                model.predict_proba(data.X_val),
                n_classes,
            )
            reporter.report(epoch, value)
    return model
