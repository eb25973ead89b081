"""What Hyperband saves: the digits MLP search with and without early stopping.

    python benchmarks/pruning.py             # a table (3 seeds x 30 trials per scheduler)
    python benchmarks/pruning.py --json      # the same numbers as JSON
    python benchmarks/pruning.py --quick     # 2 seeds x 12 trials, for a smoke check

The spec is ``examples/digits-mlp.yaml`` (torch MLP on scikit-learn's digits, up to 27
epochs per trial). For every seed the same search runs twice through kubetune's own path
(``BuiltinTrial`` on the local executor, via ``kubetune.core.search.run_search``): TPE with
``scheduler: hyperband`` and TPE with ``scheduler: none``, with the same trial count and
parallelism. The study is kept in memory, so nothing is written to disk.

Reported per scheduler (medians over the seeds):

* epochs: the epochs all trials trained, i.e. the sum over trials of the number of
  intermediate values each reported (one per epoch);
* best val_accuracy: the best trial's validation accuracy;
* wall time: the whole search, worker start-up included.

and the ratio of the epochs (hyperband / none): the share of training Hyperband needed.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import optuna

from kubetune.core.search import run_search
from kubetune.core.spec import ExperimentSpec, load_spec, parse_spec
from kubetune.executors import create_executor
from kubetune.steps.search import normalize_objective
from kubetune.steps.trial import BuiltinTrial

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "digits-mlp.yaml"
SCHEDULERS = ("hyperband", "none")


def variant(
    base: ExperimentSpec, *, scheduler: str, seed: int, trials: int, parallel: int
) -> ExperimentSpec:
    """The example spec with one scheduler, seed and trial count; no wall-time limit."""
    data = base.model_dump(mode="json", exclude_none=True)
    data["strategy"] = {"name": "tpe"}
    data["fidelity"]["scheduler"] = scheduler
    data["seed"] = seed
    data["limits"].update(max_trials=trials, parallel=parallel)
    data["limits"].pop("timeout", None)  # stop on the trial count only
    data.pop("storage", None)  # in-memory study (run_search(in_memory=True))
    return normalize_objective(parse_spec(data, source=str(EXAMPLE), base_dir=base.base_dir))


def run_once(spec: ExperimentSpec) -> dict[str, Any]:
    started = time.perf_counter()
    with create_executor(spec, trial_fn=BuiltinTrial.from_spec(spec)) as executor:
        result = run_search(spec, executor, in_memory=True)
    wall = time.perf_counter() - started
    trials = result.study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    return {
        "scheduler": result.scheduler,
        "strategy": result.strategy,
        "seed": spec.seed,
        "trials": len(trials),
        "completed": states.count(optuna.trial.TrialState.COMPLETE),
        "pruned": states.count(optuna.trial.TrialState.PRUNED),
        "failed": states.count(optuna.trial.TrialState.FAIL),
        "epochs": sum(len(t.intermediate_values) for t in trials),
        "best": result.best_value,
        "wall_s": round(wall, 2),
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for scheduler in SCHEDULERS:
        mine = [r for r in runs if r["scheduler"] == scheduler]
        bests = [r["best"] for r in mine if r["best"] is not None]
        summary[scheduler] = {
            "runs": len(mine),
            "median_epochs": statistics.median(r["epochs"] for r in mine),
            "median_best_val_accuracy": statistics.median(bests) if bests else None,
            "median_wall_s": round(statistics.median(r["wall_s"] for r in mine), 2),
            "total_wall_s": round(sum(r["wall_s"] for r in mine), 2),
            "median_pruned": statistics.median(r["pruned"] for r in mine),
        }
    none_epochs = summary["none"]["median_epochs"]
    summary["epoch_ratio"] = (
        round(summary["hyperband"]["median_epochs"] / none_epochs, 3) if none_epochs else None
    )
    none_wall = summary["none"]["median_wall_s"]
    summary["wall_ratio"] = (
        round(summary["hyperband"]["median_wall_s"] / none_wall, 3) if none_wall else None
    )
    return summary


def table(config: dict[str, Any], runs: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    lines = [
        f"digits-mlp, TPE, {config['trials']} trials x {len(config['seeds'])} seeds"
        f" (seeds {', '.join(map(str, config['seeds']))}), {config['parallel']} workers,"
        f" up to {config['max_epochs']} epochs per trial",
        "",
        f"{'scheduler':<10} {'seed':>4} {'epochs':>7} {'pruned':>6} {'failed':>6}"
        f" {'best val_acc':>12} {'wall s':>7}",
    ]
    for r in runs:
        best = f"{r['best']:.4f}" if r["best"] is not None else "-"
        lines.append(
            f"{r['scheduler']:<10} {r['seed']:>4} {r['epochs']:>7} {r['pruned']:>6}"
            f" {r['failed']:>6} {best:>12} {r['wall_s']:>7.1f}"
        )
    lines += ["", f"{'median':<10} {'epochs':>12} {'best val_acc':>13} {'wall s':>8}"]
    for scheduler in SCHEDULERS:
        s = summary[scheduler]
        best = s["median_best_val_accuracy"]
        lines.append(
            f"{scheduler:<10} {s['median_epochs']:>12g}"
            f" {(f'{best:.4f}' if best is not None else '-'):>13}"
            f" {s['median_wall_s']:>8.1f}"
        )
    lines += [
        "",
        f"epochs hyperband / none: {summary['epoch_ratio']}"
        f"   wall time hyperband / none: {summary['wall_ratio']}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--quick", action="store_true", help="2 seeds x 12 trials")
    parser.add_argument("--trials", type=int, help="trials per search (default 30; quick 12)")
    parser.add_argument("--seeds", type=int, nargs="+", help="default 0 1 2; quick 0 1")
    parser.add_argument("--parallel", type=int, default=2, help="worker processes (default 2)")
    args = parser.parse_args(argv)

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(logging.WARNING)
    trials = args.trials or (12 if args.quick else 30)
    seeds = args.seeds or ([0, 1] if args.quick else [0, 1, 2])
    base = load_spec(EXAMPLE)
    assert base.fidelity is not None
    config = {
        "spec": str(EXAMPLE),
        "strategy": "tpe",
        "trials": trials,
        "seeds": seeds,
        "parallel": args.parallel,
        "max_epochs": base.fidelity.max,
    }

    runs: list[dict[str, Any]] = []
    for seed in seeds:
        for scheduler in SCHEDULERS:
            spec = variant(
                base, scheduler=scheduler, seed=seed, trials=trials, parallel=args.parallel
            )
            run = run_once(spec)
            runs.append(run)
            print(
                f"seed {seed} {scheduler:<9}: {run['epochs']} epochs, best {run['best']},"
                f" {run['pruned']} pruned, {run['failed']} failed, {run['wall_s']}s",
                file=sys.stderr,
                flush=True,
            )
    summary = summarize(runs)
    if args.json:
        print(json.dumps({"config": config, "runs": runs, "summary": summary}, indent=2))
    else:
        print(table(config, runs, summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
