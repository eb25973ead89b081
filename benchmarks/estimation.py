"""Cheaper performance estimation: training spent until a search first reaches a target.

    python benchmarks/estimation.py            # 3 seeds, 20 trials per search
    python benchmarks/estimation.py --quick    # 2 seeds, 10 trials, shorter trainings
    python benchmarks/estimation.py --json     # the same numbers as JSON

Three problems, each searched with the method, without it, and with Hyperband, on the
same seeds through kubetune's own path (``BuiltinTrial`` on the local executor, one worker
so trials finish in order, study in memory):

* ``curve`` — digits torch MLP (``examples/digits-mlp.yaml``'s space, TPE), epochs as the
  fidelity: ``scheduler: curve`` vs ``none`` vs ``hyperband``. Cost: epochs trained.
* ``data_fraction`` — an RBF SVM on digits (random search over C and gamma): the
  budget is the fraction of training rows, with ``asha`` and with ``hyperband``, vs no
  fidelity. Cost: training rows fitted (summed over every fit).
* ``inherit`` — the digits MLP searched by regularized evolution, a fixed number of epochs
  per trial: children start from their parent's weights (``inherit: true``) vs cold starts
  vs cold starts under ``hyperband``. Cost: epochs trained.

"Cost to target" sums the cost of every trial up to and including the first one that
completes at or above the target (in trial order); "-" when no trial reached it.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from kubetune.core.search import run_search
from kubetune.core.spec import ExperimentSpec, load_spec, parse_spec
from kubetune.executors import create_executor
from kubetune.steps.data_fraction import subset
from kubetune.steps.retrieve import retrieve
from kubetune.steps.search import normalize_objective
from kubetune.steps.trial import BuiltinTrial

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "digits-mlp.yaml"

Cost = Callable[[FrozenTrial], float]


def mlp_spec(*, seed: int, trials: int, epochs: int, variant: str) -> dict[str, Any]:
    data = load_spec(EXAMPLE).model_dump(mode="json", exclude_none=True)
    data.update(seed=seed, name="digits-mlp-estimation")
    data["limits"] = {"max_trials": trials, "parallel": 1}
    data["strategy"] = {"name": "tpe"}
    data["fidelity"] = {"param": "epochs", "min": 1, "max": epochs, "reduction_factor": 3}
    data["fidelity"]["scheduler"] = variant
    return data


def inherit_spec(*, seed: int, trials: int, epochs: int, variant: str) -> dict[str, Any]:
    data = mlp_spec(seed=seed, trials=trials, epochs=epochs, variant="none")
    population = max(trials // 3, 2)
    data["strategy"] = {"name": "evolution", "population_size": population, "sample_size": 2}
    data["trainer"] = {"kind": "torch-mlp", "epochs": epochs, "inherit": variant == "inherit"}
    if variant == "hyperband":
        data["fidelity"]["scheduler"] = "hyperband"
    else:
        del data["fidelity"]  # every trial trains ``epochs`` epochs
    return data


def svm_spec(*, seed: int, trials: int, variant: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "digits-svm-estimation",
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "data": {"source": "sklearn:digits"},
        "trainer": {"kind": "sklearn", "estimator": "sklearn.svm.SVC"},
        "search_space": {
            "C": {"type": "float", "low": 0.01, "high": 100, "log": True},
            "gamma": {"type": "float", "low": 1e-5, "high": 1.0, "log": True},
        },
        "strategy": {"name": "random"},
        "limits": {"max_trials": trials, "parallel": 1},
        "seed": seed,
    }
    if variant != "none":
        data["fidelity"] = {"kind": "data_fraction", "min": 1, "max": 9, "scheduler": variant}
    return data


def epochs_cost(trial: FrozenTrial) -> float:
    return float(len(trial.intermediate_values))


def fixed_epochs_cost(epochs: int) -> Cost:
    def cost(trial: FrozenTrial) -> float:
        # without a fidelity a trial reports once per epoch too; pruned ones report fewer
        return float(len(trial.intermediate_values) or epochs)

    return cost


def rows_cost(spec: ExperimentSpec) -> Cost:
    data = retrieve(spec)
    fid = spec.fidelity
    if fid is None:
        return lambda trial: float(len(data.y_train))
    rows = {b: len(subset(data, b / fid.max, seed=spec.seed).y_train) for b in range(1, 10)}
    return lambda trial: float(sum(rows[step] for step in trial.intermediate_values))


def run_once(raw: dict[str, Any], cost_of: Callable[[ExperimentSpec], Cost], target: float):
    spec = normalize_objective(parse_spec(raw, base_dir=EXAMPLE.parent))
    started = time.perf_counter()
    # the trials' folder holds the checkpoints children inherit from
    with (
        tempfile.TemporaryDirectory(prefix="kubetune-estimation-") as trials_dir,
        create_executor(
            spec, trial_fn=BuiltinTrial.from_spec(spec), work_dir=Path(trials_dir)
        ) as executor,
    ):
        result = run_search(spec, executor, in_memory=True, output_dir=trials_dir)
    wall = time.perf_counter() - started
    cost = cost_of(spec)
    trials = sorted(result.study.get_trials(deepcopy=False), key=lambda t: t.number)
    spent, to_target = 0.0, None
    for trial in trials:
        spent += cost(trial)
        if (
            to_target is None
            and trial.state == TrialState.COMPLETE
            and (trial.value or 0) >= target
        ):
            to_target = spent
    return {
        "seed": spec.seed,
        "trials": len(trials),
        "pruned": sum(t.state == TrialState.PRUNED for t in trials),
        "failed": sum(t.state == TrialState.FAIL for t in trials),
        "cost_to_target": to_target,
        "total_cost": spent,
        "best": result.best_value,
        "wall_s": round(wall, 1),
    }


def problems(quick: bool, trials: int) -> list[dict[str, Any]]:
    epochs = 9 if quick else 27
    inherit_epochs = 3 if quick else 5
    return [
        {
            "problem": "curve",
            "unit": "epochs",
            "target": 0.96 if quick else 0.97,
            "variants": ("curve", "none", "hyperband"),
            "spec": lambda seed, v: mlp_spec(seed=seed, trials=trials, epochs=epochs, variant=v),
            "cost": lambda spec: epochs_cost,
        },
        {
            "problem": "data_fraction",
            "unit": "rows",
            "target": 0.95 if quick else 0.985,
            "variants": ("asha", "none", "hyperband"),
            "spec": lambda seed, v: svm_spec(seed=seed, trials=trials, variant=v),
            "cost": rows_cost,
        },
        {
            "problem": "inherit",
            "unit": "epochs",
            "target": 0.93 if quick else 0.96,
            "variants": ("inherit", "none", "hyperband"),
            "spec": lambda seed, v: inherit_spec(
                seed=seed, trials=trials, epochs=inherit_epochs, variant=v
            ),
            "cost": lambda spec: fixed_epochs_cost(inherit_epochs),
        },
    ]


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for key in dict.fromkeys((r["problem"], r["variant"]) for r in runs):
        mine = [r for r in runs if (r["problem"], r["variant"]) == key]
        reached = [r["cost_to_target"] for r in mine if r["cost_to_target"] is not None]
        rows.append(
            {
                "problem": key[0],
                "variant": key[1],
                "unit": mine[0]["unit"],
                "reached": f"{len(reached)}/{len(mine)}",
                "median_cost_to_target": statistics.median(reached) if reached else None,
                "median_total_cost": statistics.median(r["total_cost"] for r in mine),
                "median_best": statistics.median(r["best"] for r in mine if r["best"] is not None),
                "median_wall_s": statistics.median(r["wall_s"] for r in mine),
            }
        )
    return rows


def table(summary: list[dict[str, Any]]) -> str:
    lines = [
        f"{'problem':<14} {'variant':<10} {'unit':<7} {'reached':>7} {'to target':>10}"
        f" {'total':>9} {'best':>7} {'wall s':>7}"
    ]
    for s in summary:
        to_target = s["median_cost_to_target"]
        lines.append(
            f"{s['problem']:<14} {s['variant']:<10} {s['unit']:<7} {s['reached']:>7}"
            f" {(f'{to_target:.0f}' if to_target is not None else '-'):>10}"
            f" {s['median_total_cost']:>9.0f} {s['median_best']:>7.4f} {s['median_wall_s']:>7.1f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--quick", action="store_true", help="2 seeds, 10 trials, short runs")
    parser.add_argument("--trials", type=int, help="trials per search (default 20; quick 10)")
    parser.add_argument("--seeds", type=int, nargs="+", help="default 0 1 2; quick 0 1")
    parser.add_argument("--only", nargs="+", help="problems to run: curve data_fraction inherit")
    args = parser.parse_args(argv)

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(logging.WARNING)
    logging.getLogger("kubetune").setLevel(logging.ERROR)
    trials = args.trials or (10 if args.quick else 20)
    seeds = args.seeds or ([0, 1] if args.quick else [0, 1, 2])
    runs: list[dict[str, Any]] = []
    for problem in problems(args.quick, trials):
        if args.only and problem["problem"] not in args.only:
            continue
        for seed in seeds:
            for variant in problem["variants"]:
                run = run_once(problem["spec"](seed, variant), problem["cost"], problem["target"])
                run.update(problem=problem["problem"], variant=variant, unit=problem["unit"])
                runs.append(run)
                print(f"{problem['problem']} seed {seed} {variant}: {run}", file=sys.stderr)
    summary = summarize(runs)
    if args.json:
        print(json.dumps({"runs": runs, "summary": summary}, indent=2))
    else:
        print(f"{trials} trials per search, seeds {' '.join(map(str, seeds))}, 1 worker")
        print(table(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
