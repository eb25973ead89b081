"""Enumerate every config of a search space (for grid search and finite-space detection)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from kubetune.core.space.params import CategoricalParam, FixedParam, FloatParam, IntParam

if TYPE_CHECKING:
    from kubetune.core.space.search_space import SearchSpace

MAX_GRID_SIZE = 100_000


class GridTooLargeError(ValueError):
    pass


def param_values(param: Any, points: int | None) -> Sequence[Any]:
    """The grid values of one parameter.

    ``points`` samples long int ranges and continuous float ranges; ``None`` asks for every
    distinct value (int ranges come back as a lazy ``range``; continuous floats have none).
    """
    if isinstance(param, CategoricalParam):
        return list(param.choices)
    if isinstance(param, IntParam):
        every = range(param.low, param.high + 1, param.step)
        # Short linear ranges (layer counts, depths) are searched value by value.
        if points is None or len(every) <= points or (not param.log and len(every) <= 32):
            return every
        raw = (
            np.geomspace(param.low, param.high, points)
            if param.log
            else np.linspace(param.low, param.high, points)
        )
        return sorted({round(float(v)) for v in raw})
    if isinstance(param, FloatParam):
        if param.step is not None:
            count = _float_step_count(param)
            return [round(param.low + i * param.step, 12) for i in range(count)]
        if points is None:
            raise ValueError(f"a continuous float has no finite set of values: {param!r}")
        raw = (
            np.geomspace(param.low, param.high, points)
            if param.log
            else np.linspace(param.low, param.high, points)
        )
        return [float(v) for v in raw]
    raise TypeError(f"no grid for {param!r}")


def _float_step_count(param: FloatParam) -> int:
    assert param.step is not None
    return int(np.floor((param.high - param.low) / param.step + 1e-9)) + 1


def _value_count(param: Any, points: int | None) -> int:
    """``len(param_values(param, points))`` without building huge lists."""
    if isinstance(param, IntParam) and points is None:
        return len(range(param.low, param.high + 1, param.step))
    if isinstance(param, FloatParam) and param.step is not None:
        return _float_step_count(param)
    return len(param_values(param, points))


def iter_configs(space: SearchSpace, points: int | None = 5) -> Iterator[dict[str, Any]]:
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


def count_configs(space: SearchSpace, points: int | None = 5, cap: int = MAX_GRID_SIZE) -> int:
    """How many configs :func:`iter_configs` yields; ``points=None`` counts distinct configs.

    Only parameters that others depend on (through ``when`` or ``per_layer``) are branched
    on; the rest multiply in, so a space of a few wide int ranges is counted at once. Past
    ``cap`` the count stops early and returns some number above ``cap``.
    """
    names = space.names
    params = space.params
    referenced = {other for p in params.values() for other in (p.when or {})}
    referenced |= {layers for p in params.values() if (layers := getattr(p, "per_layer", None))}
    counts = {
        n: _value_count(p, points) for n, p in params.items() if not isinstance(p, FixedParam)
    }

    def leaf(structured: dict[str, Any]) -> int:
        total = 1
        for name in names:
            if name in referenced or name not in counts or not space.is_active(name, structured):
                continue
            layers = getattr(params[name], "per_layer", None)
            total *= counts[name] if layers is None else counts[name] ** int(structured[layers])
            if total > cap:
                return total
        return total

    def walk(i: int, structured: dict[str, Any]) -> int:
        if i == len(names):
            return leaf(structured)
        name = names[i]
        param = params[name]
        if name not in referenced or not space.is_active(name, structured):
            return walk(i + 1, structured)
        if isinstance(param, FixedParam):
            return walk(i + 1, {**structured, name: param.value})
        # A referenced parameter is never per-layer (the space forbids it).
        total = 0
        for value in param_values(param, points):
            total += walk(i + 1, {**structured, name: value})
            if total > cap:
                break
        return total

    return walk(0, {})


def build_grid(space: SearchSpace, points: int | None = 5) -> list[dict[str, Any]]:
    grid = list(itertools.islice(iter_configs(space, points), MAX_GRID_SIZE + 1))
    if len(grid) > MAX_GRID_SIZE:
        raise GridTooLargeError(
            f"strategy: the grid has more than {MAX_GRID_SIZE} configs; use random, tpe or"
            " auto, or give float parameters a step / lower grid_points"
        )
    return grid
