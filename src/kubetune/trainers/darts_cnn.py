"""DARTS supernet for torch-cnn: each block mixes its candidate convolutions, widths and
activations with softmax weights.

A block runs every candidate kernel size as a ``Conv2d(in, max(channels), k)`` ('same'
padding) and mixes their outputs with weights ``gamma``; the mixture is masked by the
expected channel mask (weights ``beta``; a narrower block is a prefix of the widest, as in
the MLP supernet), passed through the softmax-weighted candidate activations (``alpha``),
then pooled and dropped out where torch-cnn would (same rules as ``parse_blocks``). Global
average pooling and a linear head follow, as in torch-cnn itself, so the derived network
is the one the supernet approximated.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from kubetune.core.strategies.darts import DartsSpace
from kubetune.errors import SpecError
from kubetune.trainers.darts_base import SuperNet
from kubetune.trainers.torch_common import ACTIVATIONS

__all__ = ["CNNSuperNet"]


class _MixedBlock(nn.Module):
    masks: torch.Tensor  # (width choices, max channels): 1 on the first c channels of each

    def __init__(
        self,
        channels_in: int,
        widths: list[int],
        kernels: list[int],
        activations: list[str],
        *,
        batch_norm: bool,
        pool: bool,
        dropout: float,
    ) -> None:
        super().__init__()
        width = max(widths)
        self.convs = nn.ModuleList(
            nn.Conv2d(channels_in, width, int(k), padding="same") for k in kernels
        )
        self.norm: nn.Module = nn.BatchNorm2d(width) if batch_norm else nn.Identity()
        masks = torch.zeros(len(widths), width)
        for i, w in enumerate(widths):
            masks[i, :w] = 1.0
        self.register_buffer("masks", masks)
        self.acts = nn.ModuleList(ACTIVATIONS[a]() for a in activations)
        self.pool: nn.Module = nn.MaxPool2d(2) if pool else nn.Identity()
        self.drop: nn.Module = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(
        self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, alpha: torch.Tensor
    ) -> torch.Tensor:
        g = torch.softmax(gamma, 0)
        h = sum((g[i] * conv(x) for i, conv in enumerate(self.convs)), torch.zeros(()))
        h = self.norm(h)
        mask = (torch.softmax(beta, 0)[:, None] * self.masks).sum(0)  # expected channel mask
        h = h * mask[None, :, None, None]
        a = torch.softmax(alpha, 0)
        h = sum((a[i] * act(h) for i, act in enumerate(self.acts)), torch.zeros(()))
        return torch.as_tensor(self.drop(self.pool(h)))


class CNNSuperNet(SuperNet):
    defaults = {"channels": 32, "kernel_size": 3, "activation": "relu"}

    def __init__(
        self, dspace: DartsSpace, image_shape: tuple[int, int, int], output_dim: int
    ) -> None:
        super().__init__(dspace)
        n = dspace.n_layers
        self.image_shape = image_shape
        channels, height, width = image_shape
        drops = _fixed_per_block(dspace, "dropout", 0.0)
        norms = _fixed_per_block(dspace, "batch_norm", False)
        blocks = []
        for i in range(n):
            pool = height >= 2 and width >= 2  # torch-cnn pools while the map is >= 2x2
            if pool:
                height, width = height // 2, width // 2
            widths = [int(c) for c in self.candidates["channels"][i]]
            blocks.append(
                _MixedBlock(
                    channels,
                    widths,
                    [int(k) for k in self.candidates["kernel_size"][i]],
                    [str(a) for a in self.candidates["activation"][i]],
                    batch_norm=bool(norms[i]),
                    pool=pool,
                    dropout=float(drops[i]),
                )
            )
            channels = max(widths)
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, output_dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(len(x), *self.image_shape)  # rows arrive flat (the Dataset contract)
        for i, block in enumerate(self.blocks):
            x = block(
                x,
                self.logits("kernel_size", i),
                self.logits("channels", i),
                self.logits("activation", i),
            )
        return torch.as_tensor(self.head(x))


def _fixed_per_block(dspace: DartsSpace, name: str, default: Any) -> list[Any]:
    value = dspace.fixed.get(name, default)
    if not isinstance(value, list):
        return [value] * dspace.n_layers
    if len(value) != dspace.n_layers:
        raise SpecError(f"search_space.{name}: needs {dspace.n_layers} values, one per block")
    return list(value)
