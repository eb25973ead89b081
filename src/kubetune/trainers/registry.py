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

# Top-level modules a kind needs beyond the core dependencies -> the extra that installs them.
_EXTRAS: dict[str, str] = {"torch": "torch", "safetensors": "torch"}


def get_trainer(kind: str, options: dict[str, Any] | None = None) -> Trainer:
    """A new trainer of ``kind`` configured with ``options`` (the spec's trainer.options)."""
    target = _TRAINERS.get(kind)
    if target is None:
        raise KubetuneError(
            f"unknown trainer kind {kind!r}; valid kinds: {', '.join(TRAINER_KINDS)}"
        )
    module, name = target.split(":")
    try:
        loaded = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        extra = _EXTRAS.get((exc.name or "").partition(".")[0])
        if extra is None:
            raise
        # An image built without the extra: say what to install, not a traceback.
        raise KubetuneError(
            f"trainer.kind: {kind} needs the {extra} extra: pip install 'kubetune[{extra}]'"
        ) from None
    cls: type[Trainer] = getattr(loaded, name)
    return cls(options)
