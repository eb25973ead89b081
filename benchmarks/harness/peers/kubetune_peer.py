"""kubetune itself, through its public Python API (``kubetune.tune``: the local executor)."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import kubetune
from harness.peers.base import Peer
from harness.problems import Problem
from harness.trace import RunTrace, from_study
from kubetune.core.spec import parse_spec


class _Objective:
    """``objective(params, ctx)`` for ``kubetune.tune``: the problem's trial, reports included.

    A class, not a closure, so the local executor's workers unpickle it by reference.
    """

    def __init__(self, problem: Problem) -> None:
        self.problem = problem

    def __call__(self, params: dict[str, Any], ctx: kubetune.TrialContext) -> float:
        report = ctx.report if self.problem.max_budget is not None else None
        return self.problem.objective(params, report)


def study_name(problem: str) -> str:
    """A valid experiment name (lowercase letters, digits, '-'; at most 40) for a problem."""
    return re.sub(r"[^a-z0-9-]+", "-", f"bench-{problem}".lower())[:40].strip("-")


def finite_space(problem: Problem) -> bool:
    """Whether every config of the problem's space can be listed (what ``grid`` needs to
    be a search of the space rather than of a sample of its floats)."""
    spec = parse_spec(
        {
            "name": "b",
            "objective": {"metric": "v", "direction": "minimize"},
            "search_space": dict(problem.space),
        }
    )
    return spec.space.cardinality(cap=100_000) is not None


class KubetunePeer(Peer):
    """kubetune with one strategy and scheduler. ``fidelity_only``: runs only on problems
    with a fidelity (BOHB, Hyperband); ``finite_only``: only on finite spaces (grid)."""

    def __init__(
        self,
        name: str,
        strategy: str,
        scheduler: str = "auto",
        *,
        fidelity_only: bool = False,
        finite_only: bool = False,
        needs: tuple[str, ...] = (),
    ) -> None:
        self.name, self.strategy, self.scheduler = name, strategy, scheduler
        # ``auto`` resolves to hyperband when there is a fidelity (core/strategies/auto.py)
        self.early_stopping = scheduler != "none"
        self.fidelity_only, self.finite_only, self.needs = fidelity_only, finite_only, needs

    def supports(self, problem: Problem) -> bool:
        if self.fidelity_only and problem.max_budget is None:
            return False
        return not self.finite_only or finite_space(problem)

    def run(self, problem: Problem, trials: int, seed: int, workdir: Path) -> RunTrace:
        fidelity = None
        if problem.max_budget is not None:
            fidelity = {
                "param": "budget",
                "min": 1,
                "max": problem.max_budget,
                "reduction_factor": 3,
                "scheduler": self.scheduler,
            }
        started = datetime.now()
        result = kubetune.tune(
            _Objective(problem),
            dict(problem.space),
            strategy=self.strategy,
            direction="minimize",
            max_trials=trials,
            fidelity=fidelity,
            parallel=1,
            retries=0,
            seed=seed,
            name=study_name(problem.name),
        )
        trace = from_study(
            result.study,
            problem=problem.name,
            peer=self.name,
            seed=seed,
            fidelity=fidelity is not None,
            full_cost=problem.full_cost,
            started=started,
        )
        trace.wall_s = (datetime.now() - started).total_seconds()
        return trace
