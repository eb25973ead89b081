"""Cheaper performance estimation: compute spent until a search first reaches a target.

    python benchmarks/estimation.py --out /tmp/estimation.json     # every problem, 5 seeds
    python benchmarks/estimation.py --only curve-cnn pbt --seeds 0 1 --out /tmp/part.json
    python benchmarks/estimation.py --summarize /tmp/a.json /tmp/b.json --markdown out.md
    python benchmarks/estimation.py --quick                        # 2 seeds, small sizes

Each problem searches the same space three ways on the same seeds, through kubetune's own
path (``BuiltinTrial`` on the local executor, one worker so trials run in the order they
were asked, study in memory): with the method, with the same search without it, and with
Hyperband.

* ``curve-mlp`` / ``curve-cnn`` — learning-curve extrapolation (``scheduler: curve``) on
  the digits torch MLP (``examples/digits-mlp.yaml``'s space, up to 27 epochs) and CNN
  (``examples/digits-cnn.yaml``'s space, up to 9 epochs), TPE: vs ``none`` vs
  ``hyperband``. Cost: epochs trained.
* ``fraction-<model>-<dataset>`` — data-subset fidelity (``kind: data_fraction``, rungs
  1/9, 1/3, 1 of the training rows, ``asha``) on the scikit-learn grid: an RBF SVM, a
  random forest, kNN and scikit-learn's MLP, each on digits, breast_cancer and wine, random
  search: vs no fidelity vs ``data_fraction`` + ``hyperband`` (these estimators have no
  epochs, so the fraction is Hyperband's budget too). Cost: training rows fitted.
* ``inherit`` / ``inherit-short`` / ``inherit-cnn`` — weight inheritance: the digits MLP
  by regularized evolution, 15 trials of 4 epochs / 30 trials of 2 epochs, and the digits
  CNN, 30 trials of 2 epochs: children start from their parent's weights vs cold starts vs
  cold starts under ``hyperband``. Cost: epochs trained.
* ``pbt`` — population-based training on a problem where a schedule helps (digits MLP
  with plain SGD from learning rates 0.3-2.0, which learn fast early and then bounce
  around): 8 members x 4 intervals of 2 epochs vs the same population with fixed
  hyperparameters (``quantile: 0``) vs random search with ``hyperband`` on 1-8 epochs.
  Cost: epochs trained.

Every run's per-trial trace (state, value, cost, seconds) is kept in the JSON, and the
summary is computed from the traces (``benchmarks/estimation_stats.py``): the cost and the
trial seconds to the first trial completing at the target, median over seeds with a 95 %
bootstrap interval. The target is fixed per problem, or (``auto``) the 25th percentile of
the best values of all its runs, every arm and seed together.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

sys.path.insert(0, str(Path(__file__).resolve().parent))
from estimation_stats import (
    AUTO_TARGET_QUANTILE,
    auto_target,
    best_value,
    bootstrap_median,
    to_target,
)

from kubetune.core.search import run_search
from kubetune.core.spec import ExperimentSpec, load_spec, parse_spec
from kubetune.data.dataset import Dataset
from kubetune.executors import create_executor
from kubetune.steps.data_fraction import subset
from kubetune.steps.retrieve import retrieve
from kubetune.steps.search import normalize_objective
from kubetune.steps.trial import BuiltinTrial

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

Raw = dict[str, Any]
Cost = Callable[[FrozenTrial], float]


@dataclass(frozen=True)
class Sizes:
    seeds: tuple[int, ...]
    trials: int  # curve searches
    grid_trials: int
    mlp_epochs: int
    cnn_epochs: int
    inherit_trials: int
    inherit_epochs: int
    pbt_population: int
    pbt_intervals: int


FULL = Sizes((0, 1, 2, 3, 4), 12, 12, 27, 9, 15, 4, 8, 4)
QUICK = Sizes((0, 1), 8, 8, 9, 3, 10, 2, 4, 2)


@dataclass(frozen=True)
class Problem:
    name: str
    method: str  # what the first arm adds
    unit: str  # what the cost counts
    arms: dict[str, Callable[[int], Raw]]  # label -> seed -> spec; first: the method
    cost: Callable[[ExperimentSpec], Cost]
    target: float | None = None  # None: auto (see estimation_stats.auto_target)


# --------------------------------------------------------------------------- specs


def _example(name: str, *, seed: int, trials: int) -> Raw:
    data = load_spec(EXAMPLES / name).model_dump(mode="json", exclude_none=True)
    data.update(seed=seed, name=f"{Path(name).stem}-estimation")
    data["limits"] = {"max_trials": trials, "parallel": 1}
    data["strategy"] = {"name": "tpe"}
    return data


def curve_spec(example: str, *, seed: int, trials: int, epochs: int, scheduler: str) -> Raw:
    data = _example(example, seed=seed, trials=trials)
    data["fidelity"] = {"param": "epochs", "min": 1, "max": epochs, "reduction_factor": 3}
    data["fidelity"]["scheduler"] = scheduler
    return data


def inherit_spec(example: str, *, seed: int, trials: int, epochs: int, variant: str) -> Raw:
    data = curve_spec(example, seed=seed, trials=trials, epochs=epochs, scheduler="hyperband")
    population = max(trials // 3, 2)
    data["strategy"] = {"name": "evolution", "population_size": population, "sample_size": 2}
    data["trainer"]["epochs"] = epochs
    data["trainer"]["inherit"] = variant == "inherit"
    if variant != "hyperband":
        del data["fidelity"]  # every trial trains ``epochs`` epochs
    return data


def pbt_spec(*, seed: int, population: int, intervals: int, variant: str) -> Raw:
    """tests/test_pbt.py's problem: a rate that shrinks as training goes on helps."""
    interval_epochs = 2
    data: Raw = {
        "name": "digits-pbt-estimation",
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "data": {"source": "sklearn:digits"},
        "trainer": {"kind": "torch-mlp", "epochs": interval_epochs},
        "search_space": {
            "n_layers": 1,
            "units": 32,
            "optimizer": "sgd",
            "momentum": 0.0,
            "lr": {"type": "float", "low": 0.3, "high": 2.0, "log": True},
            "batch_size": 32,
        },
        "limits": {"max_trials": population * intervals, "parallel": 1},
        "seed": seed,
    }
    if variant == "hyperband":  # one training per config, up to the members' epochs
        data["strategy"] = {"name": "random"}
        data["fidelity"] = {
            "param": "epochs",
            "min": 1,
            "max": interval_epochs * intervals,
            "reduction_factor": 2,
            "scheduler": "hyperband",
        }
    else:  # fixed: nobody exploits, every member keeps its first hyperparameters
        quantile = 0.25 if variant == "pbt" else 0.0
        data["strategy"] = {"name": "pbt", "population_size": population, "quantile": quantile}
    return data


#: The scikit-learn grid: estimator -> search space (random search over it).
GRID_MODELS: dict[str, tuple[str, Raw]] = {
    "svm": (
        "sklearn.svm.SVC",
        {
            "C": {"type": "float", "low": 0.01, "high": 100, "log": True},
            "gamma": {"type": "float", "low": 1e-5, "high": 1.0, "log": True},
        },
    ),
    "forest": (
        "sklearn.ensemble.RandomForestClassifier",
        {
            "n_estimators": {"type": "int", "low": 10, "high": 200, "log": True},
            "max_depth": {"type": "int", "low": 1, "high": 16},
            "max_features": {"type": "float", "low": 0.05, "high": 1.0},
            "min_samples_leaf": {"type": "int", "low": 1, "high": 20},
        },
    ),
    "knn": (
        "sklearn.neighbors.KNeighborsClassifier",
        {
            "n_neighbors": {"type": "int", "low": 1, "high": 60, "log": True},
            "weights": ["uniform", "distance"],
            "p": [1, 2],
        },
    ),
    "mlp": (
        "sklearn.neural_network.MLPClassifier",
        {
            "hidden_layer_sizes": [16, 64, 256],
            "alpha": {"type": "float", "low": 1e-6, "high": 1.0, "log": True},
            "learning_rate_init": {"type": "float", "low": 1e-4, "high": 0.3, "log": True},
            "max_iter": 100,
        },
    ),
}
GRID_DATASETS = ("digits", "breast_cancer", "wine")
#: scikit-learn's MLP on digits takes about 10 s a trial here (2 shared cores), more than
#: the rest of the grid together: left out of the default run.
GRID_LEFT_OUT = frozenset({("mlp", "digits")})


def grid_spec(model: str, dataset: str, *, seed: int, trials: int, variant: str) -> Raw:
    estimator, space = GRID_MODELS[model]
    data: Raw = {
        "name": f"{model}-{dataset}-estimation".replace("_", "-"),
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "data": {"source": f"sklearn:{dataset}"},
        "trainer": {"kind": "sklearn", "estimator": estimator},
        "search_space": space,
        "strategy": {"name": "random"},
        "limits": {"max_trials": trials, "parallel": 1},
        "seed": seed,
    }
    if variant != "none":
        data["fidelity"] = {"kind": "data_fraction", "min": 1, "max": 9, "scheduler": variant}
    return data


# --------------------------------------------------------------------------- costs


def epochs_cost(spec: ExperimentSpec) -> Cost:
    # Every torch trial reports once per epoch, so its reports count its epochs (a pruned
    # one reported fewer). A trial that failed before reporting trained nothing worth
    # counting but the fixed epochs it was given, if any.
    fixed = spec.trainer.options.get("epochs", 0) if spec.trainer else 0
    return lambda trial: float(len(trial.intermediate_values) or fixed)


def rows_cost(spec: ExperimentSpec) -> Cost:
    data: Dataset = retrieve(spec)
    fid = spec.fidelity
    if fid is None:
        return lambda trial: float(len(data.y_train))
    rows = {b: len(subset(data, b / fid.max, seed=spec.seed).y_train) for b in range(1, 10)}
    return lambda trial: float(sum(rows[step] for step in trial.intermediate_values))


# --------------------------------------------------------------------------- problems


def problems(sizes: Sizes) -> list[Problem]:
    out = [
        Problem(
            f"curve-{net}",
            "scheduler: curve",
            "epochs",
            {
                v: (
                    lambda seed, v=v, example=example, epochs=epochs: curve_spec(
                        example, seed=seed, trials=sizes.trials, epochs=epochs, scheduler=v
                    )
                )
                for v in ("curve", "none", "hyperband")
            },
            epochs_cost,
            target,
        )
        for net, example, epochs, target in (
            ("mlp", "digits-mlp.yaml", sizes.mlp_epochs, 0.97),
            ("cnn", "digits-cnn.yaml", sizes.cnn_epochs, None),
        )
    ]
    out += [
        Problem(
            f"fraction-{model}-{dataset}",
            "kind: data_fraction + asha",
            "rows",
            {
                v: (
                    lambda seed, v=v, model=model, dataset=dataset: grid_spec(
                        model, dataset, seed=seed, trials=sizes.grid_trials, variant=v
                    )
                )
                for v in ("asha", "none", "hyperband")
            },
            rows_cost,
        )
        for model in GRID_MODELS
        for dataset in GRID_DATASETS
        if (model, dataset) not in GRID_LEFT_OUT
    ]
    # Inheritance with trials of 4 epochs, and with twice the trials of 2 epochs each (a
    # child's lineage then holds most of its training); the CNN copies matching layers
    short = max(sizes.inherit_epochs // 2, 1)
    out += [
        Problem(
            name,
            "inherit: true",
            "epochs",
            {
                v: (
                    lambda seed, v=v, example=example, trials=trials, epochs=epochs: inherit_spec(
                        example, seed=seed, trials=trials, epochs=epochs, variant=v
                    )
                )
                for v in ("inherit", "none", "hyperband")
            },
            epochs_cost,
            target,
        )
        for name, example, trials, epochs, target in (
            ("inherit", "digits-mlp.yaml", sizes.inherit_trials, sizes.inherit_epochs, 0.96),
            ("inherit-short", "digits-mlp.yaml", 2 * sizes.inherit_trials, short, 0.96),
            ("inherit-cnn", "digits-cnn.yaml", 2 * sizes.inherit_trials, short, None),
        )
    ]
    out.append(
        Problem(
            "pbt",
            "strategy: pbt",
            "epochs",
            {
                v: (
                    lambda seed, v=v: pbt_spec(
                        seed=seed,
                        population=sizes.pbt_population,
                        intervals=sizes.pbt_intervals,
                        variant=v,
                    )
                )
                for v in ("pbt", "fixed", "hyperband")
            },
            epochs_cost,
            0.97,  # high: every arm's first 2-epoch trials already pass the auto target
        )
    )
    return out


# --------------------------------------------------------------------------- running


def run_once(raw: Raw, cost_of: Callable[[ExperimentSpec], Cost]) -> dict[str, Any]:
    spec = normalize_objective(parse_spec(raw, base_dir=EXAMPLES))
    started = time.perf_counter()
    # the trials' folder holds the checkpoints children and pbt members start from
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
    trace = [
        {
            "state": t.state.name,
            "value": t.value if t.state == TrialState.COMPLETE else None,
            "cost": cost(t),
            "seconds": (
                (t.datetime_complete - t.datetime_start).total_seconds()
                if t.datetime_complete and t.datetime_start
                else 0.0
            ),
        }
        for t in trials
    ]
    return {"seed": spec.seed, "wall_s": round(wall, 2), "trace": trace}


def summarize(
    runs: list[dict[str, Any]],
    targets: dict[str, float | None],
    quantile: float = AUTO_TARGET_QUANTILE,
) -> list[dict]:
    rows: list[dict[str, Any]] = []
    for name in dict.fromkeys(r["problem"] for r in runs):
        mine = [r for r in runs if r["problem"] == name]
        fixed = targets.get(name)
        target = fixed if fixed is not None else auto_target(mine, quantile)
        for arm in dict.fromkeys(r["arm"] for r in mine):
            arm_runs = [r for r in mine if r["arm"] == arm]
            reached = [to_target(r["trace"], target) for r in arm_runs]
            costs = [c for c, _ in reached]
            secs = [s for _, s in reached]
            bests = [b for r in arm_runs if (b := best_value(r["trace"])) is not None]
            rows.append(
                {
                    "problem": name,
                    "arm": arm,
                    "unit": arm_runs[0]["unit"],
                    "target": target,
                    "target_rule": "fixed" if fixed is not None else "auto",
                    "seeds": len(arm_runs),
                    "reached": sum(math.isfinite(c) for c in costs),
                    "cost_to_target": bootstrap_median(costs),
                    "seconds_to_target": bootstrap_median(secs),
                    "total_cost": statistics.median(
                        sum(t["cost"] for t in r["trace"]) for r in arm_runs
                    ),
                    "median_best": statistics.median(bests) if bests else None,
                    "wall_s": statistics.median(r["wall_s"] for r in arm_runs),
                }
            )
    return rows


def _num(x: float, digits: int = 0) -> str:
    return "-" if not math.isfinite(x) else f"{x:,.{digits}f}"


def markdown(summary: list[dict[str, Any]]) -> str:
    lines = [
        "| problem (target) | arm | reached | cost to target, median [95 % CI] |"
        " trial s to target | total cost | median best | wall s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    previous = None
    for s in summary:
        head = (
            f"{s['problem']} ({s['target']:.4f}{'' if s['target_rule'] == 'fixed' else ' auto'})"
            if s["problem"] != previous
            else ""
        )
        previous = s["problem"]
        c, c_lo, c_hi = s["cost_to_target"]
        t, t_lo, t_hi = s["seconds_to_target"]
        best, unit = s["median_best"], s["unit"]
        lines.append(
            f"| {head} | {s['arm']} | {s['reached']}/{s['seeds']} |"
            f" {_num(c)}{f' {unit}' if math.isfinite(c) else ''} [{_num(c_lo)}, {_num(c_hi)}] |"
            f" {_num(t, 1)} [{_num(t_lo, 1)}, {_num(t_hi, 1)}] |"
            f" {_num(s['total_cost'])} | {'-' if best is None else f'{best:.4f}'} |"
            f" {s['wall_s']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="2 seeds, small sizes")
    parser.add_argument("--seeds", type=int, nargs="+", help="default 0 1 2 3 4 (quick: 0 1)")
    parser.add_argument("--only", nargs="+", help="problem names or prefixes (curve, fraction)")
    parser.add_argument("--out", type=Path, help="write every run and the summary as JSON")
    parser.add_argument("--markdown", type=Path, help="write the summary table as markdown")
    parser.add_argument(
        "--summarize", type=Path, nargs="+", help="summarize earlier --out files, run nothing"
    )
    parser.add_argument(
        "--target", nargs="+", default=[], metavar="PROBLEM=VALUE", help="override targets"
    )
    parser.add_argument(
        "--quantile",
        type=float,
        default=AUTO_TARGET_QUANTILE,
        help="the automatic target's quantile of all runs' bests (default 0.25)",
    )
    args = parser.parse_args(argv)

    sizes = QUICK if args.quick else FULL
    chosen = [
        p
        for p in problems(sizes)
        if not args.only or any(p.name == o or p.name.startswith(f"{o}-") for o in args.only)
    ]
    targets = {p.name: p.target for p in problems(sizes)}
    for item in args.target:
        name, _, value = item.partition("=")
        targets[name] = float(value)
    if args.summarize:
        runs = [run for path in args.summarize for run in json.loads(path.read_text())["runs"]]
    else:
        warnings.filterwarnings("ignore")  # convergence and experimental warnings: noise here
        optuna.logging.set_verbosity(logging.WARNING)
        logging.getLogger("kubetune").setLevel(logging.ERROR)
        runs = []
        for problem in chosen:
            for seed in args.seeds or sizes.seeds:
                for arm, make in problem.arms.items():
                    run = run_once(make(seed), problem.cost)
                    run.update(problem=problem.name, arm=arm, unit=problem.unit)
                    runs.append(run)
                    best = best_value(run["trace"])
                    print(
                        f"{problem.name} seed {seed} {arm}: best {best} wall {run['wall_s']} s",
                        file=sys.stderr,
                        flush=True,
                    )
                    if args.out:  # after every run: a long run stopped early keeps its traces
                        _write(args.out, argv, runs, None)
    summary = summarize(runs, targets, args.quantile)
    table = markdown(summary)
    if args.out:
        _write(args.out, argv, runs, summary)
    if args.markdown:
        args.markdown.write_text(table + "\n")
    print(table)
    return 0


def _write(path: Path, argv: list[str] | None, runs: list[dict], summary: list | None) -> None:
    meta = {
        "command": " ".join(["python", "benchmarks/estimation.py", *(argv or sys.argv[1:])]),
        "written": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.platform(),
        "load_average": os.getloadavg(),
    }
    path.write_text(json.dumps({"meta": meta, "runs": runs, "summary": summary}))


if __name__ == "__main__":
    sys.exit(main())
