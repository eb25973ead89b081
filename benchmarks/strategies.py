"""Which strategy wins where: the evidence behind ``auto`` (core/strategies/auto.py).

    python benchmarks/strategies.py                       # 10 seeds, every problem, table
    python benchmarks/strategies.py --seeds 20 --json out.json
    python benchmarks/strategies.py --problems nas --strategies random,optuna-tpe,evolution

Every strategy searches every problem with the same trial budget, for each seed; the score
is the best objective found (minimised). Samplers are driven in-process through optuna's
ask/tell with kubetune's own search-space code, so the numbers measure proposals, not the
loop's overhead. ``optuna-tpe`` is optuna's default ``TPESampler(seed=...)``: the yardstick.

For each problem and strategy the table gives the mean best value with a 95% bootstrap CI
over the seeds, and the paired difference to ``optuna-tpe`` (same seeds) with its 95%
bootstrap CI: ``better``/``worse`` when that CI excludes 0, ``~`` otherwise.

Problems (all minimised):

* ``sphere4``: 4 real parameters, a shifted bowl (optimum 0); 40 trials.
* ``rosen6``: 6-D Rosenbrock on [-2, 2] (optimum 0); 60 trials.
* ``mixed``: 2 reals, an int and a 4-way categorical that shifts the optimum; 40 trials.
* ``nas``: a per-layer discrete architecture space (1..5 layers, 5 widths each, 3
  activations) with one best architecture (loss 0); 60 trials.
* ``svc``: scikit-learn SVC on breast_cancer, log C and log gamma, 1 - validation accuracy
  (3-fold CV); 30 trials.
* ``knn``: scikit-learn k-NN on wine: k, weights, p and scaling, 1 - CV accuracy; 30 trials.
* ``mlp-arch``: the architecture space of an MLP on digits (1..3 layers, widths
  {8, 32, 128} per layer, activation relu/tanh, shared): every one of its 78 configs was
  trained once (scikit-learn ``MLPClassifier``, 30 epochs, seed 0) into a table, cached in
  ``benchmarks/mlp_arch_table.json``; a trial looks up 1 - validation accuracy (a tabular
  NAS benchmark, as NAS-Bench-101/201 are); 25 trials.
* ``sphere4-hb``: ``sphere4`` with a 27-epoch learning curve ``f + 5/epoch`` under
  Hyperband (1, 27, 3): multi-fidelity, 150 trials; the score is the best final value.

Problems past ``auto``'s GP limits (8 searched dimensions, 200 trials), where it picks TPE:

* ``sphere12``: 12 real parameters, a shifted bowl (optimum 0); 100 trials.
* ``cond12``: a conditional space of 12 searched dimensions: a 3-way ``model`` choice, each branch
  with its own parameters (4 reals; 3 reals and an int; 2 reals and a 3-way categorical)
  and its own floor (0, 0.5, 1.0, so the branch matters); 80 trials.
* ``rosen12``: 12-D Rosenbrock on [-2, 2] (optimum 0): a curved valley, not a bowl; 100
  trials.
* ``sphere4-long``: ``sphere4`` with 300 trials (GP's cost grows with the trials).
* ``cond12-hb``: ``cond12`` with the learning curve of ``sphere4-hb`` under Hyperband;
  150 trials.
* ``sphere12-hb``: ``sphere12`` under Hyperband as ``sphere4-hb``: the fidelity branch past
  the GP limits (TPE with Hyperband); 200 trials.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from kubetune.core.schedulers import FidelityRange
from kubetune.core.space import SearchSpace
from kubetune.core.spec import parse_spec
from kubetune.core.strategies import SamplerContext, build_sampler, choose_strategy

HERE = Path(__file__).resolve().parent
TABLE = HERE / "mlp_arch_table.json"
BASELINE = "optuna-tpe"
MAX_EPOCHS = 27


@dataclass(frozen=True)
class Problem:
    space: dict[str, Any]
    objective: Callable[[dict[str, Any]], float]
    trials: int
    fidelity: bool = False  # a learning curve under Hyperband


# --- synthetic ----------------------------------------------------------------------------

SHIFT = (1.5, -2.0, 0.5, 3.0)


def sphere4(p: dict[str, Any]) -> float:
    return sum((p[f"x{i}"] - s) ** 2 for i, s in enumerate(SHIFT))


def rosen6(p: dict[str, Any]) -> float:
    x = [p[f"x{i}"] for i in range(6)]
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(5))


def rosen12(p: dict[str, Any]) -> float:
    x = [p[f"x{i}"] for i in range(12)]
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(11))


MIXED_SHIFT = {"a": 0.0, "b": 1.0, "c": 2.0, "d": -1.0}


def mixed(p: dict[str, Any]) -> float:
    s = MIXED_SHIFT[p["c"]]
    return (p["x"] - s) ** 2 + (p["y"] + s) ** 2 + 0.3 * abs(p["n"] - 7) + (p["c"] != "b")


NAS_TARGET = (64, 128, 64)


def nas(p: dict[str, Any]) -> float:
    wrong = sum(
        0 if i < len(NAS_TARGET) and u == NAS_TARGET[i] else 1 for i, u in enumerate(p["units"])
    )
    return 2 * abs(p["n_layers"] - 3) + wrong + (p["activation"] != "relu")


SHIFT12 = tuple(round(-4 + 8 * ((7 * i) % 12) / 11, 3) for i in range(12))


def sphere12(p: dict[str, Any]) -> float:
    return sum((p[f"x{i}"] - s) ** 2 for i, s in enumerate(SHIFT12))


COND_FLOOR = {"a": 0.0, "b": 0.5, "c": 1.0}


def cond12(p: dict[str, Any]) -> float:
    """A branch's own bowl plus its floor: the best config is in branch ``a``."""
    model = p["model"]
    if model == "a":
        bowl = sum((p[f"a{i}"] - 1.0) ** 2 for i in range(4))
    elif model == "b":
        bowl = sum((p[f"b{i}"] + 1.0) ** 2 for i in range(3)) + 0.1 * abs(p["b_n"] - 12)
    else:
        bowl = (p["c0"] - 2.0) ** 2 + p["c1"] ** 2 + (p["c_kind"] != "y")
    return COND_FLOOR[model] + bowl


# --- scikit-learn -------------------------------------------------------------------------


@cache
def _dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    loader = {"breast_cancer": datasets.load_breast_cancer, "wine": datasets.load_wine}[name]
    X, y = loader(return_X_y=True)
    return X, y


def svc(p: dict[str, Any]) -> float:
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    X, y = _dataset("breast_cancer")
    model = make_pipeline(StandardScaler(), SVC(C=p["C"], gamma=p["gamma"]))
    return 1.0 - float(cross_val_score(model, X, y, cv=3).mean())


def knn(p: dict[str, Any]) -> float:
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    X, y = _dataset("wine")
    scaler = {"standard": StandardScaler(), "minmax": MinMaxScaler(), "none": "passthrough"}
    clf = KNeighborsClassifier(n_neighbors=p["k"], weights=p["weights"], p=p["p"])
    model = make_pipeline(scaler[p["scale"]], clf)
    return 1.0 - float(cross_val_score(model, X, y, cv=3).mean())


# --- the MLP architecture table -----------------------------------------------------------

ARCH_WIDTHS = (8, 32, 128)
ARCH_ACTS = ("relu", "tanh")


def _arch_key(p: dict[str, Any]) -> str:
    return f"{p['activation']}:{'-'.join(str(u) for u in p['units'])}"


def build_arch_table() -> dict[str, float]:
    """Train every config of the MLP space once (about a minute on 2 cores)."""
    from itertools import product

    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    X_tr, X_val, y_tr, y_val = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_tr)
    X_tr, X_val = scaler.transform(X_tr), scaler.transform(X_val)
    table = {}
    for act in ARCH_ACTS:
        for depth in (1, 2, 3):
            for units in product(ARCH_WIDTHS, repeat=depth):
                p = {"activation": act, "units": list(units)}
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    clf = MLPClassifier(
                        hidden_layer_sizes=units, activation=act, max_iter=30, random_state=0
                    ).fit(X_tr, y_tr)
                table[_arch_key(p)] = round(1.0 - float(clf.score(X_val, y_val)), 6)
    return table


@cache
def arch_table() -> dict[str, float]:
    if not TABLE.exists():
        TABLE.write_text(json.dumps(build_arch_table(), indent=1, sort_keys=True) + "\n")
    return dict(json.loads(TABLE.read_text()))


def mlp_arch(p: dict[str, Any]) -> float:
    return arch_table()[_arch_key(p)]


COND12_SPACE: dict[str, Any] = {
    "model": ["a", "b", "c"],
    **{f"a{i}": {"type": "float", "low": -3, "high": 3, "when": {"model": "a"}} for i in range(4)},
    **{f"b{i}": {"type": "float", "low": -3, "high": 3, "when": {"model": "b"}} for i in range(3)},
    "b_n": {"type": "int", "low": 1, "high": 32, "when": {"model": "b"}},
    "c0": {"type": "float", "low": -3, "high": 3, "when": {"model": "c"}},
    "c1": {"type": "float", "low": -3, "high": 3, "when": {"model": "c"}},
    "c_kind": {"type": "categorical", "choices": ["x", "y", "z"], "when": {"model": "c"}},
}

PROBLEMS: dict[str, Problem] = {
    "sphere4": Problem(
        {f"x{i}": {"type": "float", "low": -5, "high": 5} for i in range(4)}, sphere4, 40
    ),
    "rosen6": Problem(
        {f"x{i}": {"type": "float", "low": -2, "high": 2} for i in range(6)}, rosen6, 60
    ),
    "mixed": Problem(
        {
            "x": {"type": "float", "low": -3, "high": 3},
            "y": {"type": "float", "low": -3, "high": 3},
            "n": {"type": "int", "low": 1, "high": 20},
            "c": ["a", "b", "c", "d"],
        },
        mixed,
        40,
    ),
    "nas": Problem(
        {
            "n_layers": {"type": "int", "low": 1, "high": 5},
            "units": {
                "type": "categorical",
                "choices": [16, 32, 64, 128, 256],
                "per_layer": "n_layers",
            },
            "activation": ["relu", "tanh", "gelu"],
        },
        nas,
        60,
    ),
    "svc": Problem(
        {
            "C": {"type": "float", "low": 1e-3, "high": 1e3, "log": True},
            "gamma": {"type": "float", "low": 1e-5, "high": 1e1, "log": True},
        },
        svc,
        30,
    ),
    "knn": Problem(
        {
            "k": {"type": "int", "low": 1, "high": 50},
            "weights": ["uniform", "distance"],
            "p": {"type": "int", "low": 1, "high": 2},
            "scale": ["standard", "minmax", "none"],
        },
        knn,
        30,
    ),
    "mlp-arch": Problem(
        {
            "n_layers": {"type": "int", "low": 1, "high": 3},
            "units": {"type": "categorical", "choices": list(ARCH_WIDTHS), "per_layer": "n_layers"},
            "activation": list(ARCH_ACTS),
        },
        mlp_arch,
        25,
    ),
    "sphere4-hb": Problem(
        {f"x{i}": {"type": "float", "low": -5, "high": 5} for i in range(4)}, sphere4, 150, True
    ),
    "sphere12": Problem(
        {f"x{i}": {"type": "float", "low": -5, "high": 5} for i in range(12)}, sphere12, 100
    ),
    "cond12": Problem(COND12_SPACE, cond12, 80),
    "cond12-hb": Problem(COND12_SPACE, cond12, 150, True),
    "rosen12": Problem(
        {f"x{i}": {"type": "float", "low": -2, "high": 2} for i in range(12)}, rosen12, 100
    ),
    "sphere4-long": Problem(
        {f"x{i}": {"type": "float", "low": -5, "high": 5} for i in range(4)}, sphere4, 300
    ),
    "sphere12-hb": Problem(
        {f"x{i}": {"type": "float", "low": -5, "high": 5} for i in range(12)}, sphere12, 200, True
    ),
}

STRATEGIES = ("random", BASELINE, "tpe", "gp", "evolution", "bohb", "rl", "smac", "auto")


def make_space(raw: dict[str, Any]) -> SearchSpace:
    return parse_spec({"name": "b", "objective": {"metric": "loss"}, "search_space": raw}).space


def make_sampler(
    strategy: str, space: SearchSpace, seed: int, problem: Problem
) -> tuple[optuna.samplers.BaseSampler, str]:
    """The sampler and the strategy it really is (``auto`` resolves to one)."""
    if strategy == BASELINE:
        return optuna.samplers.TPESampler(seed=seed), BASELINE
    name = strategy
    if strategy == "auto":
        name = choose_strategy(space, problem.trials, has_fidelity=problem.fidelity).name
    fid = FidelityRange(1, MAX_EPOCHS, 3) if problem.fidelity else None
    ctx = SamplerContext(space, seed, 1, fidelity=fid, max_trials=problem.trials)
    return build_sampler(name, {}, ctx), name


def run_once(problem: Problem, strategy: str, seed: int) -> float:
    space = make_space(problem.space)
    sampler, _ = make_sampler(strategy, space, seed, problem)
    pruner = optuna.pruners.HyperbandPruner(1, MAX_EPOCHS, 3) if problem.fidelity else None
    # a fixed name: Hyperband puts a trial in a bracket by a hash of the study's name
    study = optuna.create_study(study_name=f"bench-{seed}", sampler=sampler, pruner=pruner)
    for _ in range(problem.trials):
        trial = study.ask()
        value = problem.objective(space.structure(_suggested(space, trial)))
        if not problem.fidelity:
            study.tell(trial, value)
            continue
        for epoch in range(1, MAX_EPOCHS + 1):
            trial.report(value + 5.0 / epoch, epoch)
            if epoch < MAX_EPOCHS and trial.should_prune():
                study.tell(trial, state=TrialState.PRUNED)
                break
        else:
            study.tell(trial, value + 5.0 / MAX_EPOCHS)
    return float(study.best_value)


def _suggested(space: SearchSpace, trial: optuna.Trial) -> dict[str, Any]:
    space.suggest(trial)
    return trial.params


# --- statistics ---------------------------------------------------------------------------


def bootstrap_ci(
    values: list[float], rng: np.random.Generator, n: int = 5000
) -> tuple[float, float]:
    """95% percentile bootstrap CI of the mean."""
    data = np.asarray(values, dtype=float)
    means = rng.choice(data, size=(n, len(data)), replace=True).mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def verdict(diff_ci: tuple[float, float]) -> str:
    """Against the baseline, for a minimised score: negative differences are better."""
    if diff_ci[1] < 0:
        return "better"
    if diff_ci[0] > 0:
        return "worse"
    return "~"


def run(problems: list[str], strategies: list[str], seeds: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    results: dict[str, Any] = {}
    for pname in problems:
        problem = PROBLEMS[pname]
        per: dict[str, list[float]] = {}
        times: dict[str, float] = {}
        for strategy in strategies:
            started = time.monotonic()
            per[strategy] = [run_once(problem, strategy, s) for s in range(seeds)]
            times[strategy] = time.monotonic() - started
            print(
                f"{pname:11s} {strategy:11s} {statistics.mean(per[strategy]):.4g}"
                f" ({times[strategy]:.1f}s)",
                file=sys.stderr,
            )
        rows = {}
        base = per.get(BASELINE)
        space = make_space(problem.space)
        for strategy, values in per.items():
            row: dict[str, Any] = {
                "mean": statistics.mean(values),
                "ci": bootstrap_ci(values, rng),
                "seconds": round(times[strategy], 2),
                "values": values,
            }
            if strategy == "auto":
                row["picks"] = make_sampler("auto", space, 0, problem)[1]
            if base is not None and strategy != BASELINE:
                diff = [a - b for a, b in zip(values, base, strict=True)]
                row["diff_ci"] = bootstrap_ci(diff, rng)
                row["vs_" + BASELINE] = verdict(row["diff_ci"])
            rows[strategy] = row
        results[pname] = rows
    return results


def markdown(results: dict[str, Any], seeds: int) -> str:
    strategies = list(next(iter(results.values())))
    lines = [
        f"Mean best value (lower is better) over {seeds} seeds, [95% bootstrap CI];"
        f" vs {BASELINE}: paired difference CI excludes 0 -> better/worse, else ~.",
        "",
        "| problem | " + " | ".join(strategies) + " |",
        "|---|" + "---|" * len(strategies),
    ]
    for pname, rows in results.items():
        cells = []
        for s in strategies:
            row = rows[s]
            cell = f"{row['mean']:.3g} [{row['ci'][0]:.3g}, {row['ci'][1]:.3g}]"
            if "vs_" + BASELINE in row:
                cell += f" {row['vs_' + BASELINE]}"
            if "picks" in row:
                cell += f" ({row['picks']})"
            cells.append(cell)
        lines.append(f"| {pname} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    logging.getLogger("smac").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    problems = [p for p in args.problems.split(",") if p]
    unknown = [p for p in problems if p not in PROBLEMS]
    if unknown:
        parser.error(f"unknown problem {unknown[0]!r} (known: {', '.join(PROBLEMS)})")
    results = run(problems, args.strategies.split(","), args.seeds)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    print(markdown(results, args.seeds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
