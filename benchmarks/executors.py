"""What running a trial out of process costs: the local worker pool vs the subprocess executor.

    python benchmarks/executors.py              # a table
    python benchmarks/executors.py --json       # the same numbers as JSON
    python benchmarks/executors.py --quick      # fewer trials (a smoke run)

Both executors run the same scripted trial function (``kubetune.testing.trial_functions``)
through the same search loop (``core.search.run_search``, random strategy, in-memory study),
with 2 trials in flight, for trials that sleep 0 s, 0.1 s and 1 s. Reported per executor
and trial length: the median over repeats of wall seconds per trial, the overhead per trial
over the ideal (trial time / parallel), and the ratio subprocess / local. The subprocess
executor pays interpreter start-up and imports per trial; the local one once per worker.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna

from kubetune.core.search import run_search
from kubetune.core.spec import ExperimentSpec, parse_spec
from kubetune.executors.local import LocalExecutor
from kubetune.executors.subprocess import SubprocessExecutor
from kubetune.testing.trial_functions import SCRIPTED, scripted

PARALLEL = 2


def _spec(sleep: float, trials: int) -> ExperimentSpec:
    return parse_spec(
        {
            "name": "bench-executors",
            "objective": {"metric": "value", "direction": "minimize"},
            "search_space": {"x": {"type": "float", "low": 0, "high": 1}, "sleep": sleep},
            "strategy": {"name": "random"},
            "limits": {"max_trials": trials, "parallel": PARALLEL},
        },
        source="benchmark",
    )


def _run(kind: str, sleep: float, trials: int) -> float:
    """Wall seconds per trial for one run (executor start-up included)."""
    spec = _spec(sleep, trials)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        if kind == "local":
            executor: Any = LocalExecutor(scripted, workers=PARALLEL, metric="value")
        else:
            executor = SubprocessExecutor(
                spec_data=spec.model_dump(mode="json", exclude_none=True),
                spec_dir=tmp,
                capacity=PARALLEL,
                work_dir=Path(tmp),
                function=SCRIPTED,
            )
        with executor:
            result = run_search(spec, executor, in_memory=True)
        elapsed = time.perf_counter() - start
    done = sum(t.state.is_finished() for t in result.study.trials)
    assert done == trials, f"{kind}: {done} of {trials} trials finished"
    return elapsed / trials


def measure(trials: int, repeats: int, sleeps: list[float]) -> list[dict[str, Any]]:
    rows = []
    for sleep in sleeps:
        per_kind = {}
        for kind in ("local", "subprocess"):
            runs = [_run(kind, sleep, trials) for _ in range(repeats)]
            per_trial = statistics.median(runs)
            per_kind[kind] = per_trial
            rows.append(
                {
                    "executor": kind,
                    "trial_s": sleep,
                    "trials": trials,
                    "repeats": repeats,
                    "wall_s_per_trial": round(per_trial, 4),
                    "overhead_s_per_trial": round(per_trial - sleep / PARALLEL, 4),
                }
            )
        rows[-1]["ratio_to_local"] = round(per_kind["subprocess"] / per_kind["local"], 2)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 trials, 1 repeat, 0 s and 0.1 s")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.quick:
        rows = measure(6, 1, [0.0, 0.1])
    else:
        rows = measure(args.trials, args.repeats, [0.0, 0.1, 1.0])
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'executor':<11} {'trial s':>7} {'s/trial':>8} {'overhead s':>10} {'vs local':>8}")
    for row in rows:
        ratio = row.get("ratio_to_local", "")
        print(
            f"{row['executor']:<11} {row['trial_s']:>7g} {row['wall_s_per_trial']:>8.3f}"
            f" {row['overhead_s_per_trial']:>10.3f} {ratio!s:>8}"
        )


if __name__ == "__main__":
    main()
