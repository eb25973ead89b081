"""benchmarks/estimation.py: cost to a target, the automatic target, the bootstrap interval,
and every problem's specs parse (no search runs here: the benchmark itself is the run)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import estimation  # noqa: E402
from estimation_stats import auto_target, bootstrap_median, to_target  # noqa: E402

from kubetune.core.spec import parse_spec  # noqa: E402


def trial(state: str, value: float | None, cost: float, seconds: float = 1.0) -> dict:
    return {"state": state, "value": value, "cost": cost, "seconds": seconds}


def test_cost_to_target_counts_every_trial_up_to_the_first_completed_hit() -> None:
    trace = [
        trial("COMPLETE", 0.5, 10),
        trial("PRUNED", None, 3),  # a pruned trial costs what it trained, never counts
        trial("COMPLETE", 0.9, 10, seconds=2.0),
        trial("COMPLETE", 0.95, 10),
    ]
    assert to_target(trace, 0.9) == (23.0, 4.0)
    assert to_target(trace, 0.95) == (33.0, 5.0)
    assert to_target(trace, 0.99) == (math.inf, math.inf)


def test_auto_target_is_a_low_quantile_of_the_runs_bests() -> None:
    runs = [{"trace": [trial("COMPLETE", b, 1)]} for b in (0.9, 0.8, 0.95, 0.7)]
    assert auto_target(runs) == 0.7  # 25th percentile of four: the lowest, an observed best
    runs += [{"trace": [trial("COMPLETE", b, 1)]} for b in (0.85, 0.99, 0.97, 0.96)]
    assert auto_target(runs) == 0.8  # the 2nd lowest of eight: a quarter at or below it
    with pytest.raises(ValueError, match="no run completed"):
        auto_target([{"trace": [trial("FAIL", None, 1)]}])


def test_bootstrap_median_brackets_the_median_and_keeps_unreached_runs_as_inf() -> None:
    median, low, high = bootstrap_median([10, 20, 30, 40, 50])
    assert median == 30 and 10 <= low < 30 < high <= 50
    # two of five never reached the target: the median is finite, the interval is not
    median, low, high = bootstrap_median([10, 20, 30, math.inf, math.inf])
    assert median == 30 and low >= 10 and high == math.inf
    assert math.isinf(bootstrap_median([10, math.inf, math.inf])[0])
    assert bootstrap_median([7.0]) == (7.0, 7.0, 7.0)


def test_every_problem_arm_is_a_valid_spec() -> None:
    problems = estimation.problems(estimation.FULL)
    names = [p.name for p in problems]
    assert {"curve-mlp", "curve-cnn", "inherit", "inherit-short", "pbt"} <= set(names)
    assert sum(n.startswith("fraction-") for n in names) == 11  # 4 x 3 minus mlp on digits
    for problem in problems:
        assert len(problem.arms) == 3, problem.name
        for arm, make in problem.arms.items():
            spec = parse_spec(make(0), base_dir=estimation.EXAMPLES)
            assert spec.seed == 0 and spec.limits.parallel == 1, (problem.name, arm)
