"""Synthetic functions with a known optimum, and multi-fidelity versions of them.

Fidelity ``s = step / max_budget`` in (0, 1]; a trial's cost is the steps it ran, so these
measure budget units (simulated cost), not seconds. Two kinds of low fidelity:

* **correlated**: ``f(x) + (1 - s) * bias(x)``, a small smooth bias that keeps the ranking
  of good and bad configs, as the learning curves of most models do;
* **misleading**: ``s * f(x) + (1 - s) * (C - f(x))``: below ``s = 0.5`` the ranking is
  reversed, so a scheduler that stops trials on early steps throws the good ones away.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from harness.problems.base import Problem

_BRANIN_MIN = 0.397887357729738
_HARTMANN6_MIN = -3.32236801141551
_HARTMANN6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_HARTMANN6_A = np.array(
    [
        [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
        [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
        [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
        [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
    ]
)
_HARTMANN6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)


def branin(x1: float, x2: float) -> float:
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def hartmann6(x: np.ndarray) -> float:
    inner = np.sum(_HARTMANN6_A * (x - _HARTMANN6_P) ** 2, axis=1)
    return float(-np.sum(_HARTMANN6_ALPHA * np.exp(-inner)))


class _Synthetic(Problem):
    family = "synthetic"

    def __init__(self, max_budget: int | None = None, low_fidelity: str = "correlated") -> None:
        self.max_budget = max_budget
        self.low_fidelity = low_fidelity
        if max_budget is not None:
            self.cost_unit = "budget step (simulated)"

    def _f(self, params: Mapping[str, Any]) -> float:
        raise NotImplementedError

    def _bias(self, params: Mapping[str, Any]) -> float:
        raise NotImplementedError

    def evaluate(self, params: Mapping[str, Any], budget: int | None = None) -> float:
        f = self._f(params)
        if budget is None or self.max_budget is None or budget >= self.max_budget:
            return f
        s = budget / self.max_budget
        if self.low_fidelity == "misleading":
            return s * f + (1 - s) * (self._flip - f)
        return f + (1 - s) * self._bias(params)

    _flip = 0.0


class Branin(_Synthetic):
    optimum = _BRANIN_MIN
    _flip = 60.0  # about the mean of Branin on its box: the reversed landscape stays in range

    def __init__(self, max_budget: int | None = None, low_fidelity: str = "correlated") -> None:
        super().__init__(max_budget, low_fidelity)
        self.name = {
            None: "branin",
            "correlated": "branin-mf",
            "misleading": "branin-misleading",
        }[low_fidelity if max_budget else None]

    @property
    def space(self) -> Mapping[str, Mapping[str, Any]]:
        return {
            "x1": {"type": "float", "low": -5.0, "high": 10.0},
            "x2": {"type": "float", "low": 0.0, "high": 15.0},
        }

    def _f(self, params: Mapping[str, Any]) -> float:
        return branin(float(params["x1"]), float(params["x2"]))

    def _bias(self, params: Mapping[str, Any]) -> float:
        # a smooth shift of a few units: the basins stay where they are
        return 5.0 * (1 + math.sin(float(params["x1"]) / 2) * math.cos(float(params["x2"]) / 3))


class Hartmann6(_Synthetic):
    optimum = _HARTMANN6_MIN

    def __init__(self, max_budget: int | None = None) -> None:
        super().__init__(max_budget, "correlated")
        self.name = "hartmann6-mf" if max_budget else "hartmann6"

    @property
    def space(self) -> Mapping[str, Mapping[str, Any]]:
        return {f"x{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(6)}

    def _x(self, params: Mapping[str, Any]) -> np.ndarray:
        return np.array([float(params[f"x{i}"]) for i in range(6)])

    def _f(self, params: Mapping[str, Any]) -> float:
        return hartmann6(self._x(params))

    def _bias(self, params: Mapping[str, Any]) -> float:
        return 0.3 * float(np.sum(np.sin(3 * self._x(params))) / 6 + 0.3)
