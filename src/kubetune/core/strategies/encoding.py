"""Flat parameters <-> numbers, for the model-based samplers written here (BOHB, RL).

Numeric parameters map to [0, 1] (on a log scale when the distribution is), integers as the
centres of equal cells so that every integer is equally likely under a uniform draw;
categorical parameters map to the index of their choice. Decoding clips and rounds, so any
number in range decodes to a value the distribution contains.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

__all__ = ["Dimension", "encode_space"]


@dataclass(frozen=True)
class Dimension:
    name: str
    distribution: BaseDistribution

    @property
    def is_categorical(self) -> bool:
        return isinstance(self.distribution, CategoricalDistribution)

    @property
    def n_choices(self) -> int:
        dist = self.distribution
        return len(dist.choices) if isinstance(dist, CategoricalDistribution) else 0

    def encode(self, value: Any) -> float:
        dist = self.distribution
        if isinstance(dist, CategoricalDistribution):
            return float(dist.to_internal_repr(value))
        if not (isinstance(dist, FloatDistribution | IntDistribution)):
            raise TypeError(f"unsupported distribution {dist!r}")
        low, high, x = float(dist.low), float(dist.high), float(value)
        if isinstance(dist, IntDistribution) and not dist.log:
            step = dist.step
            cells = (dist.high - dist.low) // step + 1
            return ((x - low) / step + 0.5) / cells
        if dist.log:
            low, high, x = math.log(low), math.log(high), math.log(x)
        return 0.5 if high == low else (x - low) / (high - low)

    def decode(self, u: float) -> Any:
        dist = self.distribution
        if isinstance(dist, CategoricalDistribution):
            return dist.choices[int(np.clip(round(u), 0, len(dist.choices) - 1))]
        if not (isinstance(dist, FloatDistribution | IntDistribution)):
            raise TypeError(f"unsupported distribution {dist!r}")
        u = float(np.clip(u, 0.0, 1.0))
        if isinstance(dist, IntDistribution) and not dist.log:
            cells = (dist.high - dist.low) // dist.step + 1
            index = min(int(u * cells), cells - 1)
            return dist.low + index * dist.step
        low, high = float(dist.low), float(dist.high)
        if dist.log:
            x = math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
        else:
            x = low + u * (high - low)
        if isinstance(dist, IntDistribution):  # log-scaled int
            return int(np.clip(round(x), dist.low, dist.high))
        if dist.step is not None:
            x = dist.low + round((x - dist.low) / dist.step) * dist.step
        return float(np.clip(x, dist.low, dist.high))


def encode_space(distributions: Mapping[str, BaseDistribution]) -> list[Dimension]:
    """One dimension per searched flat parameter, in a stable (name) order."""
    return [
        Dimension(name, dist)
        for name, dist in sorted(distributions.items())
        if not dist.single()  # a one-value range needs no model
    ]
