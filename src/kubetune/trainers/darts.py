"""DARTS for the torch trainers: one over-parameterised network, then the heaviest choices.

(The torch-cnn supernet is in ``kubetune.trainers.darts_cnn``; the search loop below is
shared.)

Each hidden layer computes ``Linear(in, max(widths))`` and mixes, with softmax weights
``beta``, the outputs masked to each candidate width (the weights are shared: a narrower
layer is a prefix of the widest), then mixes the candidate activations with softmax
weights ``alpha``. Training alternates a weight step on a training batch with an
architecture step on a validation batch: first-order DARTS by default (the architecture
gradient taken at the current weights), second order with ``order=2``
(:mod:`kubetune.trainers.darts_step`). The derived architecture keeps each layer's heaviest width
and activation; it is trained from scratch afterwards like any other config.

Given :class:`~kubetune.trainers.darts_checkpoint.SupernetCheckpoints`, the search saves
its whole state after every epoch and starts from the last saved epoch, so a controller
killed mid-search loses at most one epoch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from kubetune.core.strategies.darts import DartsSpace
from kubetune.data.dataset import Dataset
from kubetune.trainers.darts_base import SuperNet
from kubetune.trainers.darts_checkpoint import SearchState, SupernetCheckpoints
from kubetune.trainers.darts_step import architecture_gradients
from kubetune.trainers.metrics import count_classes
from kubetune.trainers.torch_common import (
    ACTIVATIONS,
    fill_values,
    pick_device,
    seed_everything,
    set_threads,
    standardizer,
)

__all__ = ["DartsResult", "darts_search"]


@dataclass
class DartsResult:
    config: dict[str, Any]  # the derived architecture, structured (units: [..], ...)
    # name -> one {choice: softmax weight} per layer (one entry for a shared parameter)
    weights: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    search_seconds: float = 0.0
    epochs: int = 0
    resumed_at: int = 0  # the epoch a restarted search continued from (0: from scratch)


class _MixedLayer(nn.Module):
    masks: torch.Tensor  # (choices, max width): 1 on the first w units of each width

    def __init__(self, width_in: int, widths: list[int], activations: list[str]) -> None:
        super().__init__()
        self.widths = widths
        self.linear = nn.Linear(width_in, max(widths))
        masks = torch.zeros(len(widths), max(widths))
        for i, w in enumerate(widths):
            masks[i, :w] = 1.0
        self.register_buffer("masks", masks)
        self.acts = nn.ModuleList(ACTIVATIONS[a]() for a in activations)

    def forward(self, x: torch.Tensor, beta: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        h = self.linear(x)
        mask = (torch.softmax(beta, 0)[:, None] * self.masks).sum(0)  # expected width mask
        h = h * mask
        a = torch.softmax(alpha, 0)
        return sum((a[i] * act(h) for i, act in enumerate(self.acts)), torch.zeros_like(h))


class _MLPSuperNet(SuperNet):
    defaults = {"units": 128, "activation": "relu"}

    def __init__(self, dspace: DartsSpace, input_dim: int, output_dim: int) -> None:
        super().__init__(dspace)
        units, activations = self.candidates["units"], self.candidates["activation"]
        layers, width = [], input_dim
        for i in range(dspace.n_layers):
            layers.append(_MixedLayer(width, units[i], activations[i]))
            width = max(units[i])
        self.layers = nn.ModuleList(layers)
        self.head = nn.Linear(width, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x, self.logits("units", i), self.logits("activation", i))
        return torch.as_tensor(self.head(x))


def _supernet(dspace: DartsSpace, data: Dataset, outputs: int) -> SuperNet:
    """The supernet of ``dspace``'s trainer."""
    if dspace.trainer == "torch-cnn":
        from kubetune.trainers.darts_cnn import CNNSuperNet
        from kubetune.trainers.torch_cnn import image_shape_of

        return CNNSuperNet(dspace, image_shape_of(data), outputs)
    return _MLPSuperNet(dspace, data.n_features, outputs)


def darts_search(
    dspace: DartsSpace,
    data: Dataset,
    *,
    epochs: int,
    arch_lr: float,
    weight_lr: float,
    batch_size: int,
    seed: int,
    device: str | None = None,
    threads: Any = None,
    checkpoints: SupernetCheckpoints | None = None,
    order: int = 1,
) -> DartsResult:
    """Search ``dspace`` on ``data``: weights on the training split, the architecture on
    the validation split; returns the derived config and the learned weights.
    ``checkpoints``: where the state is saved every epoch and resumed from; ``order``: 1
    (the architecture gradient at the current weights) or 2 (one virtual weight step
    ahead)."""
    started = time.monotonic()
    set_threads(threads)
    dev = pick_device(device)
    generator = seed_everything(seed)
    fill = fill_values(data.X_train)
    image_shape = None
    if dspace.trainer == "torch-cnn":  # per-channel scaling, as torch-cnn's training does
        from kubetune.trainers.torch_cnn import image_shape_of

        image_shape = image_shape_of(data)
    mean, std = standardizer(np.where(np.isnan(data.X_train), fill, data.X_train), image_shape)

    def tensor(X: np.ndarray) -> torch.Tensor:
        X = (np.where(np.isnan(X), fill, X) - mean) / std
        return torch.as_tensor(X.astype(np.float32), device=dev)

    if data.task == "classification":
        outputs = count_classes(data.class_labels, data.y_train, data.y_val, data.y_test)
        loss_fn: nn.Module = nn.CrossEntropyLoss()
        y_train = torch.as_tensor(data.y_train.astype(np.int64), device=dev)
        y_val = torch.as_tensor(data.y_val.astype(np.int64), device=dev)
    else:
        outputs, loss_fn = 1, nn.MSELoss()
        y_mean, y_std = float(data.y_train.mean()), float(data.y_train.std()) or 1.0
        y_train = torch.as_tensor(((data.y_train - y_mean) / y_std).astype(np.float32), device=dev)
        y_val = torch.as_tensor(((data.y_val - y_mean) / y_std).astype(np.float32), device=dev)
        y_train, y_val = y_train.reshape(-1, 1), y_val.reshape(-1, 1)
    X_train, X_val = tensor(data.X_train), tensor(data.X_val)
    net = _supernet(dspace, data, outputs).to(dev)
    w_opt = torch.optim.SGD(net.weight_parameters(), lr=weight_lr, momentum=0.9, weight_decay=3e-4)
    a_opt = torch.optim.Adam(
        net.arch.parameters(), lr=arch_lr, betas=(0.5, 0.999), weight_decay=1e-3
    )
    optimizers = {"weights": w_opt, "arch": a_opt}
    resumed = checkpoints.restore(net, optimizers, generator) if checkpoints else None
    first_epoch, spent_before = (resumed.epoch, resumed.seconds) if resumed else (0, 0.0)
    n_train, n_val = len(X_train), len(X_val)
    for epoch in range(first_epoch, epochs):
        net.train()
        perm = torch.randperm(n_train, generator=generator).to(dev)
        for start in range(0, n_train, batch_size):
            idx = perm[start : start + batch_size]
            vidx = torch.randint(n_val, (min(batch_size, n_val),), generator=generator).to(dev)
            val, train = (X_val[vidx], y_val[vidx]), (X_train[idx], y_train[idx])
            # architecture step on validation rows
            architecture_gradients(net, loss_fn, val, train, order=order, xi=weight_lr)
            a_opt.step()
            w_opt.zero_grad(set_to_none=True)  # weight step on training rows
            loss_fn(net(train[0]), train[1]).backward()
            nn.utils.clip_grad_norm_(net.weight_parameters(), 5.0)
            w_opt.step()
        if checkpoints is not None:
            spent = spent_before + time.monotonic() - started
            checkpoints.save(SearchState(epoch + 1, spent), net, optimizers, generator)
    config, weights = net.derived()
    seconds = spent_before + time.monotonic() - started
    return DartsResult(config, weights, seconds, epochs, resumed_at=first_epoch)
