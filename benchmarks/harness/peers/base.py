"""What a peer is: a search tool that runs one problem for a trial budget and a seed."""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from pathlib import Path

from harness.problems import Problem
from harness.trace import RunTrace


class Peer(ABC):
    """One tool, configured. ``run`` uses the tool's ordinary public API, start-up included.

    ``trials`` is the budget in full evaluations; a peer that stops trials early (a
    scheduler) gets ``mf_factor`` times more trials on a multi-fidelity problem, and every
    peer's quality is then read at the same cost (see ``metrics.best_within``).
    """

    name: str = ""
    #: modules of the ``bench`` extra it imports: missing ones make it unavailable
    needs: tuple[str, ...] = ()
    #: does it stop trials early on a problem with a fidelity?
    early_stopping: bool = False
    #: the trial budget it gets relative to the others (random search with 2x the budget)
    budget_factor: float = 1.0
    mf_factor: float = 3.0

    def missing(self) -> list[str]:
        """The modules it needs that cannot be imported here."""
        return [m for m in self.needs if importlib.util.find_spec(m) is None]

    def supports(self, problem: Problem) -> bool:
        return True

    def trials_for(self, problem: Problem, trials: int) -> int:
        factor = self.budget_factor
        if self.early_stopping and problem.max_budget is not None:
            factor *= self.mf_factor
        return max(1, round(trials * factor))

    @abstractmethod
    def run(self, problem: Problem, trials: int, seed: int, workdir: Path) -> RunTrace:
        """Run ``trials`` trials (already scaled by ``trials_for``) of ``problem``."""
