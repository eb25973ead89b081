"""optuna's own ``study.optimize``: the loop kubetune's users would otherwise write."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import optuna

from harness.peers.base import Peer
from harness.problems import Problem
from harness.spaces import suggest
from harness.trace import RunTrace, from_study

SamplerFactory = Callable[[int], optuna.samplers.BaseSampler]


def hyperband(max_budget: int) -> optuna.pruners.BasePruner:
    return optuna.pruners.HyperbandPruner(
        min_resource=1, max_resource=max_budget, reduction_factor=3
    )


class OptunaPeer(Peer):
    def __init__(
        self,
        name: str,
        sampler: SamplerFactory,
        *,
        pruned: bool = False,
        budget_factor: float = 1.0,
    ) -> None:
        self.name, self.sampler, self.pruned = name, sampler, pruned
        self.early_stopping = pruned
        self.budget_factor = budget_factor

    def supports(self, problem: Problem) -> bool:
        return not self.pruned or problem.max_budget is not None

    def run(self, problem: Problem, trials: int, seed: int, workdir: Path) -> RunTrace:
        fidelity = problem.max_budget is not None
        pruner = (
            hyperband(problem.max_budget)
            if self.pruned and problem.max_budget is not None
            else optuna.pruners.NopPruner()
        )
        started = datetime.now()
        study = optuna.create_study(sampler=self.sampler(seed), pruner=pruner)

        def objective(trial: optuna.Trial) -> float:
            def report(step: int, value: float) -> None:
                trial.report(value, step)
                if trial.should_prune():
                    raise optuna.TrialPruned

            return problem.objective(suggest(trial, problem.space), report if fidelity else None)

        study.optimize(objective, n_trials=trials, catch=(Exception,))
        trace = from_study(
            study,
            problem=problem.name,
            peer=self.name,
            seed=seed,
            fidelity=fidelity,
            full_cost=problem.full_cost,
            started=started,
        )
        trace.wall_s = (datetime.now() - started).total_seconds()
        return trace
