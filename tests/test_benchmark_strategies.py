"""The strategy benchmark (benchmarks/strategies.py) that backs ``auto``: its statistics,
its verdicts, and that ``auto`` picks on its problems what the README's table says."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "strategies.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kubetune_bench_strategies", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_bootstrap_ci_brackets_the_mean_and_narrows_with_data(bench: ModuleType) -> None:
    rng = np.random.default_rng(1)
    few = list(rng.normal(0.0, 1.0, 10))
    many = list(rng.normal(0.0, 1.0, 400))
    lo, hi = bench.bootstrap_ci(few, np.random.default_rng(0))
    assert lo < np.mean(few) < hi
    lo2, hi2 = bench.bootstrap_ci(many, np.random.default_rng(0))
    assert hi2 - lo2 < (hi - lo) / 3


def test_verdict_reads_a_minimised_difference(bench: ModuleType) -> None:
    assert bench.verdict((-2.0, -0.1)) == "better"
    assert bench.verdict((0.1, 2.0)) == "worse"
    assert bench.verdict((-1.0, 1.0)) == "~"


# what auto picks on each benchmark problem: every branch of the rule has its evidence row
AUTO_PICKS = {
    # spaces with numbers within GP's limits: GP and TPE, credited
    "sphere4": "portfolio",
    "rosen6": "portfolio",
    "mixed": "portfolio",
    "nas": "portfolio",  # the layer count is an integer
    "svc": "portfolio",
    "knn": "portfolio",
    "mlp-arch": "portfolio",
    "sphere4-hb": "portfolio",  # the fidelity branch: the portfolio under Hyperband
    "sphere12": "portfolio",  # 12 dimensions, no conditional parameter
    "rosen12": "portfolio",
    "sphere12-hb": "portfolio",
    "cond12": "tpe",  # 12 dimensions of a conditional space: grouped TPE
    "cond12-hb": "tpe",  # the same under Hyperband: TPE with a fidelity
    "sphere4-long": "tpe",  # more than 200 trials
}


def test_auto_picks_on_every_benchmark_problem_what_the_readme_says(bench: ModuleType) -> None:
    assert set(AUTO_PICKS) == set(bench.PROBLEMS)
    for name, problem in bench.PROBLEMS.items():
        space = bench.make_space(problem.space)
        assert bench.make_sampler("auto", space, 0, problem)[1] == AUTO_PICKS[name], name


def test_arch_table_covers_every_config(bench: ModuleType) -> None:
    table = bench.arch_table()
    assert len(table) == 2 * (3 + 9 + 27)
    assert all(0.0 <= v <= 1.0 for v in table.values())


def test_a_small_run_reports_every_strategy_against_the_baseline(
    bench: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = {
        "nas": dataclasses.replace(bench.PROBLEMS["nas"], trials=12),
        "sphere4-hb": dataclasses.replace(bench.PROBLEMS["sphere4-hb"], trials=12),
    }
    monkeypatch.setattr(bench, "PROBLEMS", small)
    results = bench.run(["nas", "sphere4-hb"], ["random", "optuna-tpe", "bohb", "rl"], seeds=3)
    for rows in results.values():
        assert set(rows) == {"random", "optuna-tpe", "bohb", "rl"}
        assert "vs_optuna-tpe" not in rows["optuna-tpe"]
        for name, row in rows.items():
            assert len(row["values"]) == 3
            assert row["ci"][0] <= row["mean"] <= row["ci"][1]
            if name != "optuna-tpe":
                assert row["vs_optuna-tpe"] in ("better", "worse", "~")
    table = bench.markdown(results, 3)
    assert table.count("\n| nas |") == 1 and "| sphere4-hb |" in table


def test_runs_are_reproducible_per_seed(bench: ModuleType) -> None:
    problem = dataclasses.replace(bench.PROBLEMS["mixed"], trials=15)
    assert bench.run_once(problem, "rl", 4) == bench.run_once(problem, "rl", 4)
    assert bench.run_once(problem, "random", 4) != bench.run_once(problem, "random", 5)
