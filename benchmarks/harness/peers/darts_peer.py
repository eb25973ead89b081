"""kubetune's DARTS on a problem that describes an architecture space it can relax.

DARTS is not a sampler: it trains one supernet, derives an architecture, and that
architecture is then trained and scored. A problem opts in with a
:class:`~harness.problems.base.DartsPlan` (its ``darts`` attribute): the relaxed space in
the spec's words, the kubetune data source the supernet trains on, and how a derived
architecture becomes the problem's params (every other parameter at a fixed value). The
final evaluation is the problem's own trial at full fidelity, so its score compares with
the other peers'. The supernet's cost is counted as ``2 x epochs`` fidelity steps (each of
its steps trains on a training batch and a validation batch).
"""

from __future__ import annotations

import time
from pathlib import Path

from harness.peers.base import Peer
from harness.problems import Problem
from harness.trace import RunTrace, TrialRecord


class DartsPeer(Peer):
    name = "kubetune-darts"
    needs = ("torch",)

    def supports(self, problem: Problem) -> bool:
        return problem.darts is not None

    def trials_for(self, problem: Problem, trials: int) -> int:
        return 1  # one supernet, one derived architecture, whatever the budget

    def run(self, problem: Problem, trials: int, seed: int, workdir: Path) -> RunTrace:
        from kubetune.core.spec import parse_spec
        from kubetune.core.strategies.darts import darts_space
        from kubetune.core.strategies.factory import darts_options
        from kubetune.steps.retrieve import retrieve
        from kubetune.trainers.darts import darts_search

        plan = problem.darts
        if plan is None:
            raise ValueError(f"{problem.name} has no architecture space for DARTS")
        started = time.monotonic()
        spec = parse_spec(
            {
                "name": "bench-darts",
                "objective": {"metric": "val_accuracy"},
                "data": {"source": plan.data},
                "trainer": {"kind": "torch-mlp"},
                "search_space": dict(plan.space),
                "strategy": {"name": "darts", "epochs": plan.epochs},
                "seed": seed,
            }
        )
        options = darts_options(spec.strategy.options)
        result = darts_search(
            darts_space(spec.space, "torch-mlp"), retrieve(spec), seed=seed, **options
        )
        searched = time.monotonic() - started
        value = problem.evaluate(plan.to_params(result.config))
        full = float(problem.max_budget or 1)
        trace = RunTrace(
            problem=problem.name,
            peer=self.name,
            seed=seed,
            trials=[
                TrialRecord(value=None, cost=2.0 * plan.epochs, end_s=searched),
                TrialRecord(value=value, cost=full, end_s=time.monotonic() - started),
            ],
            full_cost=full,
        )
        trace.wall_s = time.monotonic() - started
        return trace
