"""Ray Tune, local: its default searcher (random variants) alone, or with ASHA.

Ray is started once per harness process on loopback only (no dashboard, 2 CPUs), and its
start-up (``ray.init``, a few seconds) is left out of every run's time: a Ray user pays it
once per session too. Each trial is a Ray task. Unlike the other peers (one trial at a
time), Ray runs 2 trials at a time (one per CPU it is given; Ray ignores
``max_concurrent_trials`` next to a seeded ``BasicVariantGenerator``): its own cost of a
second or more per trial would otherwise dominate the benchmark's run time. Its searcher
(random variants) does not learn from results and ASHA is asynchronous, so this changes its
wall time, not its quality per trial.
"""

from __future__ import annotations

import atexit
import os
import time
from pathlib import Path
from typing import Any

from harness.peers.base import Peer
from harness.problems import Problem
from harness.spaces import ray_space
from harness.trace import RunTrace, TrialRecord

METRIC = "loss"


def ensure_ray(num_cpus: int = 2) -> None:
    """Start a local Ray on 127.0.0.1 once; stopped when the harness exits."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report: offline
    ray.init(
        num_cpus=num_cpus,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
        configure_logging=False,
    )
    atexit.register(ray.shutdown)


class _Trainable:
    """Ray's function trainable: one trial of the problem, reporting every fidelity step."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem

    def __call__(self, config: dict[str, Any]) -> None:
        from ray import tune

        def report(step: int, value: float) -> None:
            # our own clock: Ray's "timestamp" is in whole seconds
            tune.report({METRIC: value, "step": step, "at": time.time()})

        if self.problem.max_budget is None:
            report(1, self.problem.objective(config))
        else:
            self.problem.objective(config, report)


class RayTunePeer(Peer):
    needs = ("ray",)

    def __init__(self, name: str, asha: bool = False) -> None:
        self.name, self.asha = name, asha
        self.early_stopping = asha

    def supports(self, problem: Problem) -> bool:
        return not self.asha or problem.max_budget is not None

    def run(self, problem: Problem, trials: int, seed: int, workdir: Path) -> RunTrace:
        from ray import tune
        from ray.tune.schedulers import ASHAScheduler
        from ray.tune.search import BasicVariantGenerator

        ensure_ray()
        scheduler = None
        if self.asha and problem.max_budget is not None:
            scheduler = ASHAScheduler(
                time_attr="training_iteration",
                max_t=problem.max_budget,
                grace_period=1,
                reduction_factor=3,
            )
        started = time.time()
        tuner = tune.Tuner(
            _Trainable(problem),
            param_space=ray_space(problem.space),
            tune_config=tune.TuneConfig(
                metric=METRIC,
                mode="min",
                num_samples=trials,
                search_alg=BasicVariantGenerator(random_state=seed),
                scheduler=scheduler,
            ),
            run_config=tune.RunConfig(
                name=f"{problem.name}-{self.name}-{seed}",
                storage_path=str(workdir.resolve() / "ray_results"),
                verbose=0,
            ),
        )
        grid = tuner.fit()
        wall = time.time() - started
        full = problem.max_budget
        records = []
        for i in range(len(grid)):
            result = grid[i]
            metrics = result.metrics or {}
            steps = int(metrics.get("training_iteration", 0))
            done = result.error is None and METRIC in metrics and (full is None or steps >= full)
            records.append(
                TrialRecord(
                    value=float(metrics[METRIC]) if done else None,
                    cost=float(max(steps, 1)) if full is not None else 1.0,
                    end_s=float(metrics.get("at", started)) - started,
                )
            )
        records.sort(key=lambda r: r.end_s)
        return RunTrace(
            problem=problem.name,
            peer=self.name,
            seed=seed,
            trials=records,
            wall_s=wall,
            full_cost=problem.full_cost,
        )
