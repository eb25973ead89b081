"""What a trial costs in the looping pipeline under kfp.local, against KFP's own floor.

    python benchmarks/kfp_local.py [--trials 4] [--parallel 2] [--json]

Two pipelines run through ``kfp.local.SubprocessRunner(use_venv=False)``, each at N and
2N trials, ``--parallel`` at a time:

- *plain*: a ``ParallelFor`` of no-op lightweight components over a list from one task,
  then a task over ``Collected`` (what any looping KFP pipeline pays at least);
- *kubetune*: the looping pipeline of a tiny spec (SGDClassifier on iris, no fidelity,
  ``parallel`` trials per round): per round ``suggest`` -> trials -> ``record``.

The cost per trial is the slope ``(T(2N) - T(N)) / N``: the fixed tasks (retrieve, train,
evaluate, push; the plain pipeline's first and last task) cancel out. Every task is a new
interpreter here, so the numbers are dominated by start-up and imports, and swing with
the machine's load (reported alongside).
"""

# No `from __future__ import annotations`: kfp reads the components' annotations as types.

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
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


def _plain(n: int, parallel: int, root: Path) -> float:
    @dsl.pipeline(name="plain-parallel-for")
    def pipeline() -> None:
        items = _items(n=n).set_caching_options(False)
        with dsl.ParallelFor(items.output, parallelism=parallel) as item:
            done = _noop(item=item).set_caching_options(False)
        _collect(values=dsl.Collected(done.output)).set_caching_options(False)

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # kfp.local logs every task to stdout
        pipeline()
    return time.perf_counter() - start


def _kubetune(n: int, parallel: int, root: Path) -> float:
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
    start = time.perf_counter()
    run = run_pipeline_locally(spec, model_repo=str(root / "repo"), options=PipelineOptions())
    elapsed = time.perf_counter() - start
    assert run.summary.completed == n, run.summary
    return elapsed


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
            small = run(n, parallel, root / f"{name}-{n}")
            large = run(2 * n, parallel, root / f"{name}-{2 * n}")
            results[name] = {
                f"total_{n}_s": round(small, 2),
                f"total_{2 * n}_s": round(large, 2),
                "per_trial_s": round((large - small) / n, 2),
            }
    results["load_after"] = os.getloadavg()
    results["ratio"] = round(
        results["kubetune"]["per_trial_s"] / results["plain"]["per_trial_s"], 2
    )
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name in ("plain", "kubetune"):
        r = results[name]
        print(
            f"{name:9s} {n} trials {r[f'total_{n}_s']:7.1f} s, {2 * n} trials"
            f" {r[f'total_{2 * n}_s']:7.1f} s -> {r['per_trial_s']:.2f} s per trial"
        )
    print(f"kubetune / plain per trial: {results['ratio']}")
    print(f"load average before {results['load_before']}, after {results['load_after']}")


if __name__ == "__main__":
    main()
