"""What a benchmark problem is: an objective to minimise over a space, maybe with a fidelity."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# ``report(step, value)``: feeds a multi-fidelity scheduler; it may raise to stop the trial.
Report = Callable[[int, float], None]


@dataclass(frozen=True)
class DartsPlan:
    """What DARTS searches on a problem and how its result becomes the problem's params."""

    space: Mapping[str, Any]  # a darts-relaxable search space (spec words)
    data: str  # the kubetune data source the supernet trains on (``sklearn:digits``)
    epochs: int  # supernet epochs
    #: derived config (structured, as DARTS returns it) -> the problem's params
    to_params: Callable[[dict[str, Any]], dict[str, Any]] = field(default=dict)


class Problem(ABC):
    """One objective; every value is a loss (lower is better).

    ``space`` is written in the spec's words (``{"type": "float", "low": .., "high": ..,
    "log": ..}``, ``int``, ``categorical`` with ``choices``), so kubetune takes it as is and
    ``harness.spaces`` translates it for the other tools. Instances are pickled to worker
    processes (kubetune's, Ray's): heavy state (tables, data) is loaded lazily per process.
    """

    name: str = ""
    family: str = ""
    #: fidelity steps (epochs, budget units) of a full evaluation; None: single fidelity
    max_budget: int | None = None
    #: the known optimum; None: the best value any peer found in the run stands in for it
    optimum: float | None = None
    #: importable modules the problem needs beyond the core (the ``bench`` extra)
    needs: tuple[str, ...] = ()
    #: what one unit of cost is, for the report
    cost_unit: str = "trial"
    #: the architecture space kubetune's DARTS can search on this problem; None: not one
    darts: DartsPlan | None = None

    @property
    @abstractmethod
    def space(self) -> Mapping[str, Mapping[str, Any]]: ...

    @abstractmethod
    def evaluate(self, params: Mapping[str, Any], budget: int | None = None) -> float:
        """The loss of ``params`` at fidelity ``budget`` (None: full fidelity)."""

    def objective(self, params: Mapping[str, Any], report: Report | None = None) -> float:
        """One trial: with a fidelity, report the loss at every step up to ``max_budget``."""
        if self.max_budget is None:
            return self.evaluate(params)
        value = float("nan")
        for step in range(1, self.max_budget + 1):
            value = self.evaluate(params, step)
            if report is not None:
                report(step, value)
        return value

    @property
    def full_cost(self) -> float:
        """The cost of one evaluation at full fidelity (cost is counted in fidelity steps)."""
        return float(self.max_budget or 1)
