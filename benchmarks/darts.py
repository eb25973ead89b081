"""DARTS against TPE and evolution on the digits MLP or CNN architecture space.

    python benchmarks/darts.py                 # MLP, 1 seed, 12 trials for TPE/evolution
    python benchmarks/darts.py --seeds 3 --trials 20
    python benchmarks/darts.py --space cnn --seeds 2
    python benchmarks/darts.py --space mlp --seeds 5 --json benchmarks/darts-results-mlp.json
    python benchmarks/darts.py --strategies darts,darts-2nd-order --seeds 10   # first vs second

The MLP space: 2 hidden layers, per layer a width in {8, 32, 128} and an activation in
{relu, tanh, gelu} (81 architectures), lr 0.01, 20 epochs per trial. The CNN space (digits
as [1, 8, 8] images): 2 conv blocks, per block channels in {4, 16, 32}, a kernel size in
{3, 5} and an activation in {relu, tanh} (144 architectures), lr 0.01, 20 epochs per
trial. Each strategy runs the whole ``kubetune run`` path (search, final training on
train + validation, test evaluation) in a temporary folder; reported: the found
architecture, its test accuracy and the search's wall time (for DARTS: the supernet
search plus training the derived architecture once), with the mean over seeds and its 95%
bootstrap CI, and DARTS' paired difference to each other strategy (same seeds, so the same
data split).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from kubetune.core.spec import parse_spec
from kubetune.steps.run import run_experiment

MLP_SPACE = {
    "n_layers": {"type": "int", "low": 2, "high": 2},
    "units": {"type": "categorical", "choices": [8, 32, 128], "per_layer": "n_layers"},
    "activation": {
        "type": "categorical",
        "choices": ["relu", "tanh", "gelu"],
        "per_layer": "n_layers",
    },
    "lr": 0.01,
}
CNN_SPACE = {
    "n_blocks": {"type": "int", "low": 2, "high": 2},
    "channels": {"type": "categorical", "choices": [4, 16, 32], "per_layer": "n_blocks"},
    "kernel_size": {"type": "categorical", "choices": [3, 5], "per_layer": "n_blocks"},
    "activation": {"type": "categorical", "choices": ["relu", "tanh"], "per_layer": "n_blocks"},
    "lr": 0.01,
}
SPACES: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    # name -> (trainer, data, search space)
    "mlp": ("torch-mlp", {"source": "sklearn:digits"}, MLP_SPACE),
    "cnn": ("torch-cnn", {"source": "sklearn:digits", "image_shape": [1, 8, 8]}, CNN_SPACE),
}


def spec(strategy: dict[str, Any], trials: int, seed: int, space: str = "mlp") -> Any:
    trainer, data, search_space = SPACES[space]
    return parse_spec(
        {
            "name": f"darts-bench-{strategy['name']}",
            "objective": {"metric": "val_accuracy"},
            "data": data,
            "trainer": {"kind": trainer, "epochs": 20},
            "search_space": search_space,
            "strategy": strategy,
            "limits": {"max_trials": trials, "parallel": 2},
            "seed": seed,
        }
    )


def bootstrap_ci(values: list[float], seed: int = 0, n: int = 5000) -> tuple[float, float]:
    """95% percentile bootstrap CI of the mean."""
    data = np.asarray(values, dtype=float)
    means = np.random.default_rng(seed).choice(data, size=(n, len(data))).mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


# report name -> the spec's strategy
STRATEGIES: dict[str, dict[str, Any]] = {
    "darts": {"name": "darts", "epochs": 20},
    "darts-2nd-order": {"name": "darts", "epochs": 20, "order": 2},
    "tpe": {"name": "tpe"},
    "evolution": {"name": "evolution", "population_size": 6, "sample_size": 3},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--space", choices=sorted(SPACES), default="mlp")
    parser.add_argument(
        "--strategies",
        default="darts,tpe,evolution",
        help=f"comma-separated, of {', '.join(STRATEGIES)} (darts is the paired baseline)",
    )
    parser.add_argument("--json", type=Path, help="also write every run as JSON here")
    args = parser.parse_args()
    names = [n for n in args.strategies.split(",") if n]
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown or "darts" not in names:
        parser.error(f"--strategies: darts and any of {', '.join(STRATEGIES)} (got {names})")
    here = Path.cwd()
    rows: dict[str, list[tuple[float, float, Any]]] = {}
    for seed in range(args.seeds):
        for label in names:
            strategy = STRATEGIES[label]
            with tempfile.TemporaryDirectory() as tmp, open(os.devnull, "w") as quiet:
                os.chdir(tmp)
                started = time.monotonic()
                summary = run_experiment(
                    spec(strategy, args.trials, seed, args.space), console=Console(file=quiet)
                )
                seconds = time.monotonic() - started
            acc = summary.test_metrics["accuracy"]
            rows.setdefault(label, []).append((acc, seconds, summary.best_params))
            print(label, seed, round(acc, 4), round(seconds, 1), summary.best_params)
    os.chdir(here)
    print(
        f"| strategy | trainings | test accuracy, mean [95% CI] over {args.seeds} seeds |"
        " DARTS minus it, paired [95% CI] | wall time, s (mean) |"
    )
    print("|---|---|---|---|---|")
    darts_acc = [v[0] for v in rows["darts"]]
    for name, values in rows.items():
        trainings = "1 supernet + 1" if name.startswith("darts") else str(args.trials)
        accs = [v[0] for v in values]
        low, high = bootstrap_ci(accs)
        diff = ""
        if name != "darts" and len(accs) > 1:
            d = [a - b for a, b in zip(darts_acc, accs, strict=True)]
            d_low, d_high = bootstrap_ci(d)
            diff = f"{statistics.mean(d):+.4f} [{d_low:+.4f}, {d_high:+.4f}]"
        sec = statistics.mean(v[1] for v in values)
        print(
            f"| {name} | {trainings} | {statistics.mean(accs):.4f} [{low:.4f}, {high:.4f}]"
            f" | {diff} | {sec:.1f} |"
        )
    if args.json:
        runs = {
            name: [{"test_accuracy": a, "seconds": s, "best_params": p} for a, s, p in v]
            for name, v in rows.items()
        }
        document = {"space": args.space, "seeds": args.seeds, "trials": args.trials, "runs": runs}
        args.json.write_text(json.dumps(document, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
