"""Trainer kinds by name. Modules are imported on demand: sklearn-only runs never import torch."""

from __future__ import annotations

import importlib
from typing import Any

from kubetune.errors import KubetuneError
from kubetune.trainers.base import Trainer

# kind -> "module:class"
_TRAINERS: dict[str, str] = {
    "torch-mlp": "kubetune.trainers.torch_mlp:TorchMLPTrainer",
    "torch-cnn": "kubetune.trainers.torch_cnn:TorchCNNTrainer",
    "sklearn": "kubetune.trainers.sklearn_estimator:SklearnTrainer",
    "custom": "kubetune.trainers.custom:CustomTrainer",
}

TRAINER_KINDS: tuple[str, ...] = tuple(_TRAINERS)


def get_trainer(kind: str, options: dict[str, Any] | None = None) -> Trainer:
    """A new trainer of ``kind`` configured with ``options`` (the spec's trainer.options)."""
    target = _TRAINERS.get(kind)
    if target is None:
        raise KubetuneError(
            f"unknown trainer kind {kind!r}; valid kinds: {', '.join(TRAINER_KINDS)}"
        )
    module, name = target.split(":")
    cls: type[Trainer] = getattr(importlib.import_module(module), name)
    return cls(options)
