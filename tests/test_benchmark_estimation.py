"""benchmarks/estimation.py: cost to a target, the automatic target, the bootstrap interval,
and every problem's specs parse (no search runs here: the benchmark itself is the run)."""

from __future__ import annotations

import json
import math
import subprocess
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
    expected = {"curve-mlp", "curve-cnn", "inherit", "inherit-short", "inherit-cnn", "pbt"}
    assert expected <= set(names)
    assert sum(n.startswith("fraction-") for n in names) == 11  # 4 x 3 minus mlp on digits
    for problem in problems:
        assert len(problem.arms) == 3, problem.name
        for arm, make in problem.arms.items():
            spec = parse_spec(make(0), base_dir=estimation.EXAMPLES)
            assert spec.seed == 0 and spec.limits.parallel == 1, (problem.name, arm)


@pytest.mark.slow
def test_a_quick_run_records_a_trace_per_trial_and_summarizes_it(tmp_path: Path) -> None:
    """One seed of two small problems end to end (real searches on the local executor)."""
    out = tmp_path / "runs.json"
    args = ["--quick", "--seeds", "0", "--only", "fraction-svm-wine", "pbt", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, str(BENCH / "estimation.py"), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text())
    assert [(r["problem"], r["arm"]) for r in data["runs"]] == [
        ("fraction-svm-wine", "asha"),
        ("fraction-svm-wine", "none"),
        ("fraction-svm-wine", "hyperband"),
        ("pbt", "pbt"),
        ("pbt", "fixed"),
        ("pbt", "hyperband"),
    ]
    sizes = estimation.QUICK
    for run in data["runs"]:
        expected = sizes.grid_trials if run["problem"] != "pbt" else None
        if run["problem"] == "pbt" and run["arm"] != "hyperband":
            expected = sizes.pbt_population * sizes.pbt_intervals
        if expected is not None:
            assert len(run["trace"]) == expected, run["arm"]
        assert all(t["cost"] > 0 for t in run["trace"] if t["state"] != "FAIL")
    # without a fidelity every SVM trial fits all the training rows once
    plain = next(r for r in data["runs"] if r["arm"] == "none")
    assert len({t["cost"] for t in plain["trace"]}) == 1
    # with fractions, a trial stopped at the first rung cost less than one that completed
    fractions = next(r for r in data["runs"] if r["arm"] == "asha")
    assert min(t["cost"] for t in fractions["trace"]) < plain["trace"][0]["cost"]
    summary = {(s["problem"], s["arm"]): s for s in data["summary"]}
    assert summary[("pbt", "pbt")]["target"] == 0.97  # fixed; the grid's is automatic
    assert summary[("fraction-svm-wine", "none")]["target_rule"] == "auto"
