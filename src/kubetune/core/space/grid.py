"""Enumerate every config of a search space (for grid search and finite-space detection)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from kubetune.core.space.params import CategoricalParam, FixedParam, FloatParam, IntParam

if TYPE_CHECKING:
    from kubetune.core.space.search_space import SearchSpace

MAX_GRID_SIZE = 100_000


class GridTooLargeError(ValueError):
    pass


def param_values(param: Any, points: int) -> list[Any]:
    """The grid values of one parameter; ``points`` samples continuous ranges."""
    if isinstance(param, CategoricalParam):
        return list(param.choices)
    if isinstance(param, IntParam):
        every = list(range(param.low, param.high + 1, param.step))
        # Short linear ranges (layer counts, depths) are searched value by value.
        if len(every) <= points or (not param.log and len(every) <= 32):
            return every
        raw = (
            np.geomspace(param.low, param.high, points)
            if param.log
            else np.linspace(param.low, param.high, points)
        )
        return sorted({int(round(v)) for v in raw})
    if isinstance(param, FloatParam):
        if param.step is not None:
            count = int(np.floor((param.high - param.low) / param.step + 1e-9)) + 1
            return [round(param.low + i * param.step, 12) for i in range(count)]
        raw = (
            np.geomspace(param.low, param.high, points)
            if param.log
            else np.linspace(param.low, param.high, points)
        )
        return [float(v) for v in raw]
    raise TypeError(f"no grid for {param!r}")


def iter_configs(space: SearchSpace, points: int = 5) -> Iterator[dict[str, Any]]:
    """Yield every config as optuna's flat params (conditions and layers respected)."""
    names = space.names

    def walk(i: int, structured: dict[str, Any], flat: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if i == len(names):
            yield dict(flat)
            return
        name = names[i]
        param = space.params[name]
        if not space.is_active(name, structured) or isinstance(param, FixedParam):
            if isinstance(param, FixedParam) and space.is_active(name, structured):
                structured = {**structured, name: param.value}
            yield from walk(i + 1, structured, flat)
            return
        values = param_values(param, points)
        layers = getattr(param, "per_layer", None)
        if layers is None:
            for v in values:
                yield from walk(i + 1, {**structured, name: v}, {**flat, name: v})
            return
        count = int(structured[layers])
        for combo in itertools.product(values, repeat=count):
            layer_flat = {f"{name}_{k}": v for k, v in enumerate(combo)}
            yield from walk(i + 1, {**structured, name: list(combo)}, {**flat, **layer_flat})

    yield from walk(0, {}, {})


def count_configs(space: SearchSpace, points: int = 5, cap: int = MAX_GRID_SIZE) -> int:
    """Count configs, stopping early at ``cap + 1`` so huge spaces stay cheap to inspect."""
    return sum(1 for _ in itertools.islice(iter_configs(space, points), cap + 1))


def build_grid(space: SearchSpace, points: int = 5) -> list[dict[str, Any]]:
    grid = list(itertools.islice(iter_configs(space, points), MAX_GRID_SIZE + 1))
    if len(grid) > MAX_GRID_SIZE:
        raise GridTooLargeError(
            f"strategy: the grid has more than {MAX_GRID_SIZE} configs; use random, tpe or"
            " auto, or give float parameters a step / lower grid_points"
        )
    return grid
