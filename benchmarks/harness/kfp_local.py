"""A plain kfp.local pipeline as a peer for per-trial cost: a ParallelFor of no-op tasks.

Each task runs the way KFP runs a lightweight component (a fresh Python process running
``kfp.dsl.executor_main`` on the task's executor input), here through
``kfp.local.SubprocessRunner(use_venv=False)``: no cluster, nothing simulated.
"""

# no "from __future__ import annotations": kfp reads the component's annotations as types

import time
from pathlib import Path

from kfp import dsl, local


@dsl.component
def noop_trial(x: int) -> float:
    return 0.0


def per_trial_s(trials: int, workdir: Path, parallelism: int = 2) -> float:
    """Wall seconds per trial of a ParallelFor of ``trials`` no-op tasks (init left out)."""

    @dsl.pipeline(name="kfp-local-noop")
    def pipeline() -> None:
        with dsl.ParallelFor(items=list(range(trials)), parallelism=parallelism) as item:
            noop_trial(x=item)

    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(workdir.resolve() / "kfp-local"),
        raise_on_error=True,
    )
    started = time.perf_counter()
    pipeline()
    return (time.perf_counter() - started) / trials
