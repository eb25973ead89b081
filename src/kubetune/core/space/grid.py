"""Enumerate every config of a search space (for grid search and finite-space detection)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from kubetune.core.space.params import CategoricalParam, FixedParam, FloatParam, IntParam

if TYPE_CHECKING:
    from kubetune.core.space.search_space import SearchSpace

MAX_GRID_SIZE = 100_000
# Configs times the values in each: bounds the memory a grid takes (~100 B a value).
MAX_GRID_VALUES = 2_000_000


class GridTooLargeError(ValueError):
    pass


def param_values(param: Any, points: int | None) -> Sequence[Any]:
    """The grid values of one parameter.

    ``points`` samples long int ranges and continuous float ranges; ``None`` asks for every
    distinct value (int ranges and stepped floats come back lazily: a range can hold 2**53
    values; continuous floats have none).
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
            return _FloatSteps(param.low, param.step, _float_step_count(param))
        if points is None:
            raise ValueError(f"a continuous float has no finite set of values: {param!r}")
        raw = (
            np.geomspace(param.low, param.high, points)
            if param.log
            else np.linspace(param.low, param.high, points)
        )
        return [float(v) for v in raw]
    raise TypeError(f"no grid for {param!r}")


class _FloatSteps(Sequence[float]):
    """``low, low + step, ...``: ``count`` values, computed when read (like ``range``)."""

    def __init__(self, low: float, step: float, count: int) -> None:
        self._low, self._step, self._count = low, step, count

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> float: ...
    @overload
    def __getitem__(self, index: slice) -> list[float]: ...
    def __getitem__(self, index: int | slice) -> float | list[float]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError(index)
        return round(self._low + index * self._step, 12)


def _float_step_count(param: FloatParam) -> int:
    assert param.step is not None  # noqa: S101 (type narrowing)
    return int(np.floor((param.high - param.low) / param.step + 1e-9)) + 1


def _value_count(param: Any, points: int | None) -> int:
    """``len(param_values(param, points))`` without building huge lists."""
    if isinstance(param, IntParam) and points is None:
        return len(range(param.low, param.high + 1, param.step))
    if isinstance(param, FloatParam) and param.step is not None:
        return _float_step_count(param)
    return len(param_values(param, points))


def _max_width(space: SearchSpace) -> int:
    """The most values one config can hold (per-layer parameters at their most layers)."""
    params = space.params
    width = 0
    for param in params.values():
        if isinstance(param, FixedParam):
            continue
        layers = getattr(param, "per_layer", None)
        count = params[layers] if layers is not None else None
        width += count.high if isinstance(count, IntParam) else 1
    return width


def iter_configs(space: SearchSpace, points: int | None = 5) -> Iterator[dict[str, Any]]:
    """Yield every config as optuna's flat params (conditions and layers respected).

    Depth-first with an explicit stack, not recursion: a space may have a thousand parameters.
    """
    names = space.names
    params = space.params
    State = tuple[dict[str, Any], dict[str, Any]]  # (structured, flat) so far

    def choices(name: str, state: State) -> Iterator[State]:
        structured, flat = state
        param = params[name]
        if not space.is_active(name, structured):
            yield state
        elif isinstance(param, FixedParam):
            yield {**structured, name: param.value}, flat
        elif (layers := getattr(param, "per_layer", None)) is None:
            for v in param_values(param, points):
                yield {**structured, name: v}, {**flat, name: v}
        else:
            values = param_values(param, points)
            for combo in itertools.product(values, repeat=int(structured[layers])):
                layer_flat = {f"{name}_{k}": v for k, v in enumerate(combo)}
                yield {**structured, name: list(combo)}, {**flat, **layer_flat}

    # Each frame: (index of the next parameter to decide, the states reached so far).
    stack: list[tuple[int, Iterator[State]]] = [(0, iter([({}, {})]))]
    while stack:
        i, states = stack[-1]
        state = next(states, None)
        if state is None:
            stack.pop()
        elif i == len(names):
            yield dict(state[1])
        else:
            stack.append((i + 1, choices(names[i], state)))


# Counting a conditional space walks its branches; past this many steps it stops and answers
# "more than cap" (a space that branchy is no grid to enumerate anyway).
_COUNT_BUDGET = 100_000
_INACTIVE = object()  # a branching parameter that a branch does not have
_DONE = object()


def count_configs(space: SearchSpace, points: int | None = 5, cap: int = MAX_GRID_SIZE) -> int:
    """How many configs :func:`iter_configs` yields; ``points=None`` counts distinct configs.

    Only parameters that others depend on (through ``when`` or ``per_layer``) are branched
    on; the rest multiply in, so a space of a few wide int ranges is counted at once. Past
    ``cap`` the count stops early and returns some number above ``cap``; so does a space
    that would take more than ``_COUNT_BUDGET`` steps to count. Time and memory stay bounded
    whatever the ranges: nothing is enumerated past ``cap`` values.
    """
    return _count(space, points, cap)[0]


def _count(space: SearchSpace, points: int | None, cap: int) -> tuple[int, bool]:
    """:func:`count_configs`, and whether it gave up (too branchy) rather than counted."""
    names = space.names
    params = space.params
    over = cap + 1
    referenced = {other for p in params.values() for other in (p.when or {})}
    referenced |= {layers for p in params.values() if (layers := getattr(p, "per_layer", None))}
    counts = {
        n: _value_count(p, points) for n, p in params.items() if not isinstance(p, FixedParam)
    }
    # Unreferenced parameters: always there (multiplied in once) or conditional (per branch).
    base = 1
    conditional = []
    for name in names:
        if name in referenced or name not in counts:
            continue
        if params[name].when is None and getattr(params[name], "per_layer", None) is None:
            base *= counts[name]
        else:
            conditional.append(name)
    if base > cap:
        return base, False  # every branch has at least this many configs
    branching = [n for n in names if n in referenced]
    structured: dict[str, Any] = {}
    work = 0

    def leaf() -> int:
        nonlocal work
        total = base
        for name in conditional:
            work += 1
            if not space.is_active(name, structured):
                continue
            layers = getattr(params[name], "per_layer", None)
            for _ in range(1 if layers is None else int(structured[layers])):
                total *= counts[name]
                if total > cap:
                    return total
        return total

    def options(name: str) -> Sequence[Any] | None:
        """The values to branch on, or None when they alone are more than ``cap``."""
        param = params[name]
        if not space.is_active(name, structured):
            return [_INACTIVE]
        if isinstance(param, FixedParam):
            return [param.value]
        # Active here, so each value is at least one config of its own.
        return None if counts[name] > cap else param_values(param, points)

    if not branching:
        return leaf(), False
    total = 0
    stack: list[Iterator[Any]] = []
    values = options(branching[0])
    if values is None:
        return over, False
    stack.append(iter(values))
    while stack:
        level = len(stack) - 1
        name = branching[level]
        value = next(stack[-1], _DONE)
        if value is _DONE:
            stack.pop()
            structured.pop(name, None)
            continue
        work += 1
        if work > _COUNT_BUDGET:
            return over, True
        if value is _INACTIVE:
            structured.pop(name, None)
        else:
            structured[name] = value
        if level + 1 == len(branching):
            total += leaf()
            if total > cap:
                return total, False
        else:
            values = options(branching[level + 1])
            if values is None:
                return over, False
            stack.append(iter(values))
    return total, False


def build_grid(space: SearchSpace, points: int | None = 5) -> list[dict[str, Any]]:
    # Counted first, cheaply: a grid is only built when it is known to be small enough.
    size, gave_up = _count(space, points, cap=MAX_GRID_SIZE)
    if gave_up:
        raise GridTooLargeError(
            "strategy: the conditions branch too much to enumerate a grid; use random, tpe or auto"
        )
    if size > MAX_GRID_SIZE:
        raise GridTooLargeError(
            f"strategy: the grid has more than {MAX_GRID_SIZE} configs; use random, tpe or"
            " auto, or give float parameters a step / lower grid_points"
        )
    width = _max_width(space)
    if size * width > MAX_GRID_VALUES:
        raise GridTooLargeError(
            f"strategy: the grid has {size} configs of up to {width} values each (more than"
            f" {MAX_GRID_VALUES} in all); use random, tpe or auto, or lower grid_points"
        )
    grid = list(itertools.islice(iter_configs(space, points), MAX_GRID_SIZE + 1))
    if len(grid) > MAX_GRID_SIZE:  # the count above should have said so
        raise GridTooLargeError(f"strategy: the grid has more than {MAX_GRID_SIZE} configs")
    return grid
