"""What every DARTS supernet shares: its candidates per layer, one vector of architecture
logits per relaxed choice (per layer, or one for a shared parameter), and the derived
architecture (the heaviest candidate of each) with the learned softmax weights."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from kubetune.core.strategies.darts import FAMILIES, DartsSpace
from kubetune.errors import SpecError

__all__ = ["SuperNet"]


class SuperNet(nn.Module):
    """Base class: subclasses build their layers from :attr:`candidates` and mix with
    :meth:`logits`; ``defaults`` are the trainer's values for parameters the spec omits."""

    defaults: dict[str, Any] = {}

    def __init__(self, dspace: DartsSpace) -> None:
        super().__init__()
        self.dspace = dspace
        self.relaxed = FAMILIES[dspace.trainer].relaxed
        # name -> the candidates of each layer; a fixed value is a single candidate
        self.candidates = {name: self._per_layer(name) for name in self.relaxed}
        self.arch = nn.ParameterDict()
        for name in self.relaxed:
            count = 1 if name in dspace.shared or name not in dspace.choices else dspace.n_layers
            for i in range(count):
                size = len(self.candidates[name][i])
                self.arch[f"{name}_{i}"] = nn.Parameter(1e-3 * torch.randn(size))

    def _per_layer(self, name: str) -> list[list[Any]]:
        n = self.dspace.n_layers
        if name in self.dspace.choices:
            return [list(self.dspace.choices[name]) for _ in range(n)]
        value = self.dspace.fixed.get(name, self.defaults[name])
        if isinstance(value, list):
            if len(value) != n:
                raise SpecError(f"search_space.{name}: needs {n} values, one per layer")
            return [[v] for v in value]
        return [[value] for _ in range(n)]

    def logits(self, name: str, layer: int) -> torch.Tensor:
        key = f"{name}_{layer}" if f"{name}_{layer}" in self.arch else f"{name}_0"
        return self.arch[key]

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch.parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def derived(self) -> tuple[dict[str, Any], dict[str, list[dict[str, float]]]]:
        config: dict[str, Any] = dict(self.dspace.fixed)
        weights: dict[str, list[dict[str, float]]] = {}
        for name in self.relaxed:
            if name not in self.dspace.choices:
                continue
            options = self.candidates[name]
            count = 1 if name in self.dspace.shared else self.dspace.n_layers
            picks, table = [], []
            for i in range(count):
                probs = torch.softmax(self.logits(name, i).detach(), 0).cpu().numpy()
                picks.append(options[i][int(np.argmax(probs))])
                table.append(
                    {str(c): round(float(p), 4) for c, p in zip(options[i], probs, strict=True)}
                )
            config[name] = picks[0] if name in self.dspace.shared else picks
            weights[name] = table
        return config, weights
