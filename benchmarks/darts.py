"""DARTS against TPE and evolution on the digits MLP architecture space.

    python benchmarks/darts.py                 # 1 seed, 12 trials for TPE/evolution
    python benchmarks/darts.py --seeds 3 --trials 20

The space: 2 hidden layers, per layer a width in {8, 32, 128} and an activation in
{relu, tanh, gelu} (81 architectures), lr 0.01, 20 epochs per trial. Each strategy runs
the whole ``kubetune run`` path (search, final training on train + validation, test
evaluation) in a temporary folder; reported: the found architecture, its test accuracy
and the search's wall time (for DARTS: the supernet search plus training the derived
architecture once).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from typing import Any

from rich.console import Console

from kubetune.core.spec import parse_spec
from kubetune.steps.run import run_experiment


def spec(strategy: dict[str, Any], trials: int, seed: int) -> Any:
    return parse_spec(
        {
            "name": f"darts-bench-{strategy['name']}",
            "objective": {"metric": "val_accuracy"},
            "data": {"source": "sklearn:digits"},
            "trainer": {"kind": "torch-mlp", "epochs": 20},
            "search_space": {
                "n_layers": {"type": "int", "low": 2, "high": 2},
                "units": {"type": "categorical", "choices": [8, 32, 128], "per_layer": "n_layers"},
                "activation": {
                    "type": "categorical",
                    "choices": ["relu", "tanh", "gelu"],
                    "per_layer": "n_layers",
                },
                "lr": 0.01,
            },
            "strategy": strategy,
            "limits": {"max_trials": trials, "parallel": 2},
            "seed": seed,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--trials", type=int, default=12)
    args = parser.parse_args()
    strategies = [
        {"name": "darts", "epochs": 20},
        {"name": "tpe"},
        {"name": "evolution", "population_size": 6, "sample_size": 3},
    ]
    rows: dict[str, list[tuple[float, float, Any]]] = {}
    for seed in range(args.seeds):
        for strategy in strategies:
            with tempfile.TemporaryDirectory() as tmp, open(os.devnull, "w") as quiet:
                os.chdir(tmp)
                started = time.monotonic()
                summary = run_experiment(
                    spec(strategy, args.trials, seed), console=Console(file=quiet)
                )
                seconds = time.monotonic() - started
            acc = summary.test_metrics["accuracy"]
            rows.setdefault(strategy["name"], []).append((acc, seconds, summary.best_params))
            print(strategy["name"], seed, round(acc, 4), round(seconds, 1), summary.best_params)
    print("| strategy | trials | test accuracy (mean) | wall time, s (mean) |")
    print("|---|---|---|---|")
    for name, values in rows.items():
        trials = 1 if name == "darts" else args.trials
        acc = statistics.mean(v[0] for v in values)
        sec = statistics.mean(v[1] for v in values)
        print(f"| {name} | {trials} | {acc:.4f} | {sec:.1f} |")


if __name__ == "__main__":
    main()
