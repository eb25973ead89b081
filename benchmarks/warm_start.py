"""What a warm start saves a recurring re-tuning run: trials to reach the first run's best.

    python benchmarks/warm_start.py              # a table (5 seeds)
    python benchmarks/warm_start.py --json       # the same numbers as JSON
    python benchmarks/warm_start.py --quick      # 2 seeds, smaller runs, for a smoke check

For each seed, a scheduled re-tuning story on a small scikit-learn problem (kernel ridge
regression with an RBF kernel, ``alpha`` and ``gamma`` on log scales, on Friedman #1 data):

1. a first run tunes on the data of "day 1" (``--first`` trials, TPE) and pushes its model;
2. on "day 2" the data has changed slightly (every target measured again, a little noise
   added), and the same experiment (same spec, same seed: what a schedule runs) runs again
   three ways,
   each stopping as soon as it reaches the first run's best validation RMSE, within
   ``--tolerance`` (1 %: the data changed, so exactly that value may not exist any more),
   through ``objective.target``, or after ``--cap`` trials:
   * **warm (study)**: the scheduled run as kubetune does it, in the first run's folder:
     its new study starts from the best configs of the first run's study;
   * **warm (manifests)**: the same with a fresh study storage (a new pod in a pipeline),
     so the configs come from the model repository's manifests (one version: one config);
   * **cold**: ``retune.warm_start: 0``.

Every run goes through ``kubetune.steps.run.run_experiment`` (the step a scheduled pipeline
and ``kubetune run`` call): local executor, one worker, final training, champion gate.
Reported: the trials each way needed (a run that did not get there counts as ``cap``, and
is shown with ``+``), per seed and as medians.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import yaml
from rich.console import Console

from kubetune.core.spec import load_spec
from kubetune.steps.run import run_experiment
from kubetune.steps.search import normalize_objective

WAYS = ("warm_study", "warm_manifests", "cold")


def write_data(path: Path, seed: int, *, rows: int, day: int) -> None:
    """Friedman #1 rows (noise sd 0.5). Day 2 has the same rows with every target measured
    again (extra noise, sd 0.05): slightly changed data with the same row count, so the
    seeded train/validation/test split puts the same rows in each part, and an error floor
    only about 0.3 % higher (more extra noise would put the first run's best out of reach
    of any config, and the benchmark would measure nothing)."""
    from sklearn.datasets import make_friedman1

    X, y = make_friedman1(n_samples=rows, n_features=6, noise=0.5, random_state=seed)
    if day > 1:
        y = y + np.random.default_rng(seed + day).normal(0.0, 0.05, size=len(y))
    columns = [f"x{i}" for i in range(X.shape[1])]
    table = np.column_stack([X, y])
    header = ",".join([*columns, "y"])
    np.savetxt(path, table, delimiter=",", header=header, comments="", fmt="%.6f")


def spec_file(folder: Path, *, seed: int, trials: int, warm: int, target: float | None) -> Path:
    spec: dict[str, Any] = {
        "name": "friedman",
        "objective": {"metric": "rmse", "direction": "minimize"},
        "data": {"source": "rows.csv", "target": "y", "task": "regression"},
        "trainer": {"kind": "sklearn", "estimator": "sklearn.kernel_ridge.KernelRidge"},
        "search_space": {
            "alpha": {"type": "float", "low": 1e-5, "high": 10.0, "log": True},
            "gamma": {"type": "float", "low": 1e-4, "high": 10.0, "log": True},
            "kernel": {"type": "fixed", "value": "rbf"},
        },
        "strategy": {"name": "tpe"},
        "limits": {"max_trials": trials, "parallel": 1},
        "seed": seed,
        "model_repo": "repo",
        "retune": {"warm_start": warm},
    }
    if target is not None:
        spec["objective"]["target"] = target
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def run(folder: Path, **spec_args: Any) -> Any:
    spec = normalize_objective(load_spec(spec_file(folder, **spec_args)))
    quiet = Console(file=open("/dev/null", "w"))  # noqa: SIM115 (lives as long as the run)
    return run_experiment(spec, context=None, console=quiet, model_repo=str(folder / "repo"))


def trials_to(study_summary: Any, cap: int) -> int:
    """Trials the run needed: all of them when it stopped on the target, else the cap."""
    reached = study_summary.stop_kind == "target"
    return study_summary.completed + study_summary.failed if reached else cap


def one_seed(
    seed: int, *, first: int, cap: int, warm: int, rows: int, tolerance: float
) -> dict[str, Any]:
    import os

    root = Path(tempfile.mkdtemp(prefix=f"kubetune-warm-{seed}-"))
    here = os.getcwd()
    try:
        day1 = root / "day1"
        day1.mkdir()
        os.chdir(day1)
        write_data(day1 / "rows.csv", seed, rows=rows, day=1)
        first_run = run(day1, seed=seed, trials=first, warm=warm, target=None)
        best = float(first_run.best_value)
        target = best * (1 + tolerance)  # RMSE: lower is better
        result: dict[str, Any] = {"seed": seed, "first_best_rmse": best, "target_rmse": target}

        folders = {
            "warm_study": day1,  # the same folder: the first run's study is in its journal
            "warm_manifests": root / "manifests",
            "cold": root / "cold",
        }
        shutil.copytree(day1 / "repo", folders["warm_manifests"] / "repo")
        folders["cold"].mkdir()
        for way, folder in folders.items():
            os.chdir(folder)
            write_data(folder / "rows.csv", seed, rows=rows, day=2)
            summary = run(
                folder,
                seed=seed,  # the same scheduled spec every day
                trials=cap,
                warm=0 if way == "cold" else warm,
                target=target,
            )
            result[way] = trials_to(summary, cap)
            result[f"{way}_reached"] = summary.stop_kind == "target"
            result[f"{way}_warm_started"] = summary.warm_started
        return result
    finally:
        os.chdir(here)
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first", type=int, default=30, help="trials of the first run")
    parser.add_argument("--cap", type=int, default=40, help="most trials of a re-tuning run")
    parser.add_argument("--warm", type=int, default=5, help="retune.warm_start (top-k)")
    parser.add_argument("--rows", type=int, default=500, help="rows of data")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=0.01,
        help="reached: within this fraction of the first run's best (default 0.01)",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="2 seeds, 12/15 trials")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.first, args.cap = 2, 12, 15
    optuna.logging.set_verbosity(logging.WARNING)
    warnings.filterwarnings("ignore")
    rows = [
        one_seed(
            seed,
            first=args.first,
            cap=args.cap,
            warm=args.warm,
            rows=args.rows,
            tolerance=args.tolerance,
        )
        for seed in range(args.seeds)
    ]
    medians = {way: statistics.median(r[way] for r in rows) for way in WAYS}
    report = {
        "seeds": args.seeds,
        "first_trials": args.first,
        "cap": args.cap,
        "warm_start": args.warm,
        "tolerance": args.tolerance,
        "per_seed": rows,
        "median_trials": medians,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"trials to reach the first run's best val RMSE within {args.tolerance:.0%}"
        f" (cap {args.cap}; + = not reached)"
    )
    heads = ("seed", "first best", "warm (study)", "warm (manifests)", "cold")
    print(f"{heads[0]:>4}  {heads[1]:>10}  {heads[2]:>12}  {heads[3]:>16}  {heads[4]:>5}")
    for r in rows:
        cells = [f"{r[w]}{'' if r[f'{w}_reached'] else '+'}" for w in WAYS]
        print(
            f"{r['seed']:>4}  {r['first_best_rmse']:>10.4f}  {cells[0]:>12}  {cells[1]:>16}"
            f"  {cells[2]:>5}"
        )
    print(
        f"median  {'':>10}  {medians['warm_study']:>12g}  {medians['warm_manifests']:>16g}"
        f"  {medians['cold']:>5g}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
