"""The benchmark harness (benchmarks/harness): its metric functions on hand-computed cases,
its synthetic problems against their known optima, and ``run.py --smoke`` end to end on the
core dependencies only (Ray Tune reported as not run, never faked)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

from harness import metrics  # noqa: E402
from harness.peers.kubetune_peer import study_name  # noqa: E402
from harness.problems import PROBLEMS, make_problem  # noqa: E402
from harness.problems.synthetic import branin, hartmann6  # noqa: E402
from harness.trace import RunTrace, TrialRecord  # noqa: E402

from kubetune.core.spec import parse_spec  # noqa: E402


def _trace(
    values: list[float | None], costs: list[float] | None = None, full: float = 1.0
) -> RunTrace:
    costs = costs or [1.0] * len(values)
    records = [
        TrialRecord(value=v, cost=c, end_s=float(i + 1) * 10)
        for i, (v, c) in enumerate(zip(values, costs, strict=True))
    ]
    return RunTrace(problem="p", peer="x", seed=0, trials=records, full_cost=full)


def test_normalized_score_is_0_at_the_optimum_and_1_at_random_median() -> None:
    assert metrics.normalized_score(2.0, optimum=2.0, random_median=6.0) == 0.0
    assert metrics.normalized_score(6.0, optimum=2.0, random_median=6.0) == 1.0
    assert metrics.normalized_score(3.0, optimum=2.0, random_median=6.0) == pytest.approx(0.25)
    assert metrics.normalized_score(8.0, optimum=2.0, random_median=6.0) == pytest.approx(1.5)
    assert math.isnan(metrics.normalized_score(2.0, optimum=2.0, random_median=2.0))
    assert metrics.normalized_score(math.inf, optimum=2.0, random_median=6.0) == math.inf


def test_bootstrap_ci_brackets_the_mean() -> None:
    values = [0.0] * 6 + [1.0] * 6
    lo, hi = metrics.bootstrap_ci(values)
    assert 0.1 < lo < 0.5 < hi < 0.9
    assert metrics.bootstrap_ci([0.3, 0.3, 0.3]) == (0.3, 0.3)
    assert all(math.isnan(x) for x in metrics.bootstrap_ci([1.0]))
    # the same seed gives the same interval; a wider spread a wider one
    assert metrics.bootstrap_ci(values) == (lo, hi)
    wide = metrics.bootstrap_ci([0.0] * 6 + [10.0] * 6)
    assert wide[1] - wide[0] > hi - lo


def test_average_ranks_share_ties_and_skip_missing_peers() -> None:
    scores = {
        "p1": {"a": 0.1, "b": 0.5, "c": 0.9},
        "p2": {"a": 0.4, "b": 0.4, "c": 0.1},
        "p3": {"a": 0.2, "b": math.nan},  # c did not run, b's score is undefined
    }
    ranks = metrics.average_ranks(scores)
    assert ranks == {"a": pytest.approx((1 + 2.5 + 1) / 3), "b": 2.25, "c": 2.0}


def test_best_within_reads_the_trace_at_a_cost() -> None:
    trace = _trace([5.0, None, 3.0, 1.0], costs=[1, 2, 1, 1])
    assert metrics.best_within(trace, 1) == 5.0
    assert metrics.best_within(trace, 4) == 3.0  # the pruned trial's cost counts
    assert metrics.best_within(trace, 5) == 1.0
    assert metrics.best_within(_trace([None]), 5) == math.inf


def test_time_to_target_in_cost_and_wall_time() -> None:
    trace = _trace([5.0, 4.0, None, 2.0], costs=[3, 3, 1, 3], full=3.0)
    assert metrics.time_to_target(trace, 4.5) == pytest.approx(2.0)  # 6 steps = 2 full evals
    assert metrics.time_to_target(trace, 2.0) == pytest.approx(10 / 3)
    assert metrics.time_to_target(trace, 2.0, axis="wall") == 40.0
    assert metrics.time_to_target(trace, 1.0) == math.inf


def test_speedup_against_a_baseline() -> None:
    assert metrics.speedup([10, 20, 30], [2, 4, 6]) == (5.0, False)
    assert metrics.speedup([10, 20, 30], [math.inf] * 3) == (0.0, False)
    # the baseline's median run never reached the target: its budget, a lower bound
    value, bound = metrics.speedup([10, math.inf, math.inf], [5, 5, 5], baseline_cap=30)
    assert (value, bound) == (6.0, True)


def test_compare_finds_a_clear_difference_and_no_difference() -> None:
    low, high = [0.1, 0.2, 0.15, 0.12, 0.18], [0.9, 0.8, 0.85, 0.95, 0.7]
    assert metrics.compare(low, high).verdict == "better"
    assert metrics.compare(high, low).verdict == "worse"
    assert metrics.compare(low, low).verdict == "same"
    assert metrics.compare(low[:3], high[:3]).verdict == "same"  # 3 vs 3: p >= 0.1


def test_efficiency_is_ideal_over_wall() -> None:
    assert metrics.efficiency(work_s=10.0, workers=2, wall_s=5.0) == 1.0
    assert metrics.efficiency(work_s=10.0, workers=2, wall_s=10.0) == 0.5


def test_synthetic_functions_have_their_known_optima() -> None:
    for x1, x2 in ((-math.pi, 12.275), (math.pi, 2.275), (9.42478, 2.475)):
        assert branin(x1, x2) == pytest.approx(make_problem("branin").optimum, abs=1e-5)
    x = np.array([0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573])
    assert hartmann6(x) == pytest.approx(make_problem("hartmann6").optimum, abs=1e-4)
    assert hartmann6(np.full(6, 0.5)) > make_problem("hartmann6").optimum


def test_low_fidelities_keep_or_reverse_the_ranking() -> None:
    good, bad = {"x1": math.pi, "x2": 2.275}, {"x1": -5.0, "x2": 0.0}
    correlated, misleading = make_problem("branin-mf"), make_problem("branin-misleading")
    for problem in (correlated, misleading):  # full fidelity is the function itself
        assert problem.evaluate(good, 27) == pytest.approx(branin(math.pi, 2.275))
    assert correlated.evaluate(good, 1) < correlated.evaluate(bad, 1)
    assert misleading.evaluate(good, 1) > misleading.evaluate(bad, 1)
    steps: list[int] = []
    correlated.objective(good, lambda step, value: steps.append(step))
    assert steps == list(range(1, 28))


def test_every_registered_problem_builds_and_names_a_valid_experiment() -> None:
    space = {"x": {"type": "float", "low": 0, "high": 1}}
    for name in PROBLEMS:
        problem = PROBLEMS[name]()
        assert problem.name == name
        # kubetune.tune refuses names with '_' (hpolib-naval_propulsion): the peer maps them
        objective = {"metric": "v", "direction": "minimize"}
        parse_spec(
            {"name": study_name(name), "objective": objective, "search_space": space}, source=name
        )


@pytest.mark.slow
def test_smoke_run_end_to_end_on_core_dependencies(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--smoke", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    problems = summary["quality"]["problems"]
    assert set(problems) == {"branin", "branin-mf", "sklearn-dt-iris"}
    for name, problem in problems.items():
        kt = problem["peers"]["kubetune"]
        assert kt["seeds"] == 2 and all(b is not None for b in kt["best"]), name
        assert problem["peers"]["optuna-random"]["median"] is not None
    assert "sklearn-halving" in problems["sklearn-dt-iris"]["peers"]
    assert "ttt" in problems["branin-mf"]
    assert summary["overhead"]["peers"]["kubetune (local executor, 2 workers)"]["ms_per_trial"] > 0
    assert [r["storage"] for r in summary["scaling"]["rows"]] == ["memory"] * 2 + ["journal"] * 2
    results = (tmp_path / "RESULTS.md").read_text()
    assert "| target | measured | verdict | note |" in results
    # a peer of the bench extra is said to be not run, never faked
    assert "peer ray-tune: not run in smoke mode" in results
    assert "Ray Tune (local, 2 concurrent) | - | not run in smoke mode" in results
    assert not (tmp_path / "plots").exists()

    # --merge: redo one peer on one problem, keep the rest (other runs, overhead, scaling)
    def runs(path: Path) -> list[tuple[str, str]]:
        traces = json.loads(path.read_text())["traces"]
        return sorted((t["problem"], t["peer"]) for t in traces)

    before = runs(tmp_path / "traces.json")
    merge = [sys.executable, str(BENCH / "run.py"), "--smoke", "--out", str(tmp_path), "--merge"]
    only = ["--only", "quality", "branin", "optuna-random"]  # branin matches branin-mf too
    done = subprocess.run([*merge, *only], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert runs(tmp_path / "traces.json") == before
    merged = json.loads((tmp_path / "summary.json").read_text())
    assert merged["overhead"] == summary["overhead"] and merged["scaling"] == summary["scaling"]
    assert set(merged["quality"]["problems"]) == set(problems)
    assert ", then python benchmarks/run.py --smoke" in merged["command"]

    # --first-seed with --merge adds seeds to the earlier runs instead of replacing them
    def seeds_of(path: Path, problem: str, peer: str) -> list[int]:
        traces = json.loads(path.read_text())["traces"]
        return sorted(t["seed"] for t in traces if (t["problem"], t["peer"]) == (problem, peer))

    kubetune_seeds = seeds_of(tmp_path / "traces.json", "branin", "kubetune")
    more = ["--only", "quality", "branin", "optuna-random", "--first-seed", "2", "--seeds", "2"]
    done = subprocess.run([*merge, *more], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert seeds_of(tmp_path / "traces.json", "branin", "optuna-random") == [0, 1, 2, 3]
    assert seeds_of(tmp_path / "traces.json", "branin-mf", "optuna-random") == [0, 1, 2, 3]
    assert seeds_of(tmp_path / "traces.json", "branin", "kubetune") == kubetune_seeds == [0, 1]
    added = json.loads((tmp_path / "summary.json").read_text())
    assert added["mode"]["seeds"] == 4 and added["mode"]["first_seed"] == 0
    assert added["quality"]["problems"]["branin"]["peers"]["optuna-random"]["seeds"] == 4
    assert added["quality"]["problems"]["branin"]["peers"]["kubetune"]["seeds"] == 2
    assert "branin / optuna-random: 4" in (tmp_path / "RESULTS.md").read_text()

    # --render-only: RESULTS.md again from the JSON, running nothing; summary.json's
    # quality follows traces.json (which may have been assembled by hand)
    (tmp_path / "RESULTS.md").unlink()
    stale = json.loads((tmp_path / "summary.json").read_text())
    stale["quality"] = {"problems": {}}
    (tmp_path / "summary.json").write_text(json.dumps(stale))
    done = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--smoke", "--out", str(tmp_path), "--render-only"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| target | measured | verdict | note |" in (tmp_path / "RESULTS.md").read_text()
    rendered = json.loads((tmp_path / "summary.json").read_text())
    assert rendered["quality"]["problems"]["branin"]["peers"]["optuna-random"]["seeds"] == 4
    assert rendered["mode"] == added["mode"]


def test_only_narrows_a_mode_and_can_add_a_problem_outside_it() -> None:
    from harness.modes import resolve

    quick = resolve("quick")
    narrowed = resolve("quick", only=("sklearn", "kubetune"))
    assert narrowed.problems == tuple(p for p in quick.problems if p.startswith("sklearn-"))
    assert narrowed.peers == ("kubetune", "sklearn-halving")  # sklearn-halving is a "sklearn-"
    added = resolve("quick", seeds=2, only=("hartmann6-mf",))
    assert added.problems == ("hartmann6-mf",) and added.seeds == 2
    assert added.peers == quick.peers
    with pytest.raises(KeyError, match="no problem or peer named nope"):
        resolve("quick", only=("nope",))
