"""What a trial costs in the looping pipeline under kfp.local, against KFP's own floor.

    python benchmarks/kfp_local.py [--trials 4] [--parallel 2] [--json]

Two pipelines run through ``kfp.local.SubprocessRunner(use_venv=False)``, each at N and
2N trials, ``--parallel`` at a time:

- *plain*: a ``ParallelFor`` of no-op lightweight components over a list from one task,
  then a task over ``Collected`` (what any looping KFP pipeline pays at least);
- *kubetune*: the looping pipeline of a tiny spec (SGDClassifier on iris, no fidelity,
  ``parallel`` trials per round): per round ``suggest`` -> trials -> ``record``.

The cost per trial is the slope ``(T(2N) - T(N)) / N``: the fixed tasks (retrieve, train,
evaluate, push; the plain pipeline's first and last task) cancel out. It is given in wall
seconds and in CPU seconds of the task processes (``RUSAGE_CHILDREN``): every task is a new
interpreter here, so the numbers are dominated by start-up and imports, and wall time
swings with the machine's load (reported alongside) while CPU time much less.
"""

# No `from __future__ import annotations`: kfp reads the components' annotations as types.

import argparse
import contextlib
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kfp import dsl, local

from kubetune.core.spec import parse_spec
from kubetune.kfp.local_run import run_pipeline_locally
from kubetune.kfp.pipelines import PipelineOptions


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def _items(n: int) -> list:
    return list(range(n))


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def _noop(item: int) -> int:
    return item


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def _collect(values: list) -> int:
    return len(values)


def _timed(run: Callable[[], object]) -> tuple[float, float]:
    """Wall seconds, and CPU seconds of the child processes, of ``run()``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    run()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _plain(n: int, parallel: int, root: Path) -> tuple[float, float]:
    @dsl.pipeline(name="plain-parallel-for")
    def pipeline() -> None:
        items = _items(n=n).set_caching_options(False)
        with dsl.ParallelFor(items.output, parallelism=parallel) as item:
            done = _noop(item=item).set_caching_options(False)
        _collect(values=dsl.Collected(done.output)).set_caching_options(False)

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    with contextlib.redirect_stdout(sys.stderr):  # kfp.local logs every task to stdout
        return _timed(pipeline)


def _kubetune(n: int, parallel: int, root: Path) -> tuple[float, float]:
    spec = parse_spec(
        {
            "name": f"bench-kfp-{n}",
            "objective": {"metric": "val_accuracy"},
            "data": {"source": "sklearn:iris"},
            "trainer": {"kind": "sklearn", "estimator": "sklearn.linear_model.SGDClassifier"},
            "search_space": {
                "alpha": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
                "loss": "log_loss",
            },
            "strategy": {"name": "random"},
            "limits": {"max_trials": n, "parallel": parallel},
            "runs_dir": str(root / "runs"),
        }
    )
    runs = []

    def run() -> None:
        runs.append(
            run_pipeline_locally(spec, model_repo=str(root / "repo"), options=PipelineOptions())
        )

    timing = _timed(run)
    if runs[0].summary.completed != n:
        raise RuntimeError(f"looping pipeline: {runs[0].summary.completed} of {n} trials completed")
    return timing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4, help="N (and 2N) trials")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    n, parallel = args.trials, args.parallel
    results: dict[str, Any] = {"trials": n, "parallel": parallel, "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="kubetune-bench-kfp-") as tmp:
        root = Path(tmp)
        os.chdir(root)
        for name, run in (("plain", _plain), ("kubetune", _kubetune)):
            small, small_cpu = run(n, parallel, root / f"{name}-{n}")
            large, large_cpu = run(2 * n, parallel, root / f"{name}-{2 * n}")
            results[name] = {
                f"total_{n}_s": round(small, 2),
                f"total_{2 * n}_s": round(large, 2),
                "per_trial_s": round((large - small) / n, 2),
                "cpu_per_trial_s": round((large_cpu - small_cpu) / n, 2),
            }
    results["load_after"] = os.getloadavg()
    for key in ("per_trial_s", "cpu_per_trial_s"):
        plain = results["plain"][key]
        results[f"ratio_{key}"] = round(results["kubetune"][key] / plain, 1) if plain > 0 else None
    if args.json:
        sys.stdout.write(json.dumps(results, indent=2) + "\n")
        return
    write = sys.stdout.write  # kfp.local leaves print() indenting its output
    for name in ("plain", "kubetune"):
        r = results[name]
        write(
            f"{name:9s} {n} trials {r[f'total_{n}_s']:7.1f} s, {2 * n} trials"
            f" {r[f'total_{2 * n}_s']:7.1f} s -> {r['per_trial_s']:.2f} s per trial"
            f" ({r['cpu_per_trial_s']:.2f} CPU s)\n"
        )
    write(
        f"kubetune / plain per trial: {results['ratio_per_trial_s']} (wall),"
        f" {results['ratio_cpu_per_trial_s']} (CPU)\n"
    )
    write(f"load average before {results['load_before']}, after {results['load_after']}\n")


if __name__ == "__main__":
    main()
