"""The peer harness's every-strategy run (``benchmarks/run.py --strategies``): one peer per
kubetune strategy, each on the problems it applies to, and the RESULTS.md section
"Every strategy on every problem"."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

from harness import analysis, report  # noqa: E402
from harness.modes import resolve  # noqa: E402
from harness.peers import PEERS, RANDOM, STRATEGY_PEERS, TPE, make_peer  # noqa: E402
from harness.problems import make_problem  # noqa: E402
from harness.trace import RunTrace, TrialRecord  # noqa: E402

from kubetune.core.strategies.factory import BUILDERS  # noqa: E402


def test_every_kubetune_strategy_has_a_peer() -> None:
    # every strategy name the factory builds, and auto (the default peer); pbt needs a
    # trainer's checkpoints and runs through kubetune run, not kubetune.tune
    covered = {getattr(make_peer(p), "strategy", "darts") for p in STRATEGY_PEERS}
    assert set(BUILDERS) - {"pbt"} <= covered | {"auto"}, set(BUILDERS) - covered
    assert "auto" in covered and set(STRATEGY_PEERS) <= set(PEERS)


def test_strategies_mode_runs_every_strategy_next_to_the_yardsticks() -> None:
    quick = resolve("quick")
    mode = resolve("quick", strategies=True)
    assert mode.problems == quick.problems and mode.seeds == quick.seeds
    assert mode.peers == (TPE, RANDOM, *STRATEGY_PEERS)
    assert mode.name == "quick --strategies" and mode.ray_problems == ()
    narrowed = resolve("smoke", only=("kubetune-bohb", "branin-mf"), strategies=True)
    assert narrowed.peers == ("kubetune-bohb",) and narrowed.problems == ("branin-mf",)


@pytest.mark.parametrize(
    ("peer", "applies", "not_applies"),
    [
        ("kubetune-bohb", "branin-mf", "branin"),
        ("kubetune-hyperband", "hartmann6-mf", "hartmann6"),
        ("kubetune-grid", "sklearn-knn-iris", "branin"),  # a finite space; a real one
        ("kubetune-darts", "torch-mlp-digits", "branin-mf"),
        ("kubetune-gp", "branin", None),
    ],
)
def test_each_strategy_runs_where_it_applies(
    peer: str, applies: str, not_applies: str | None
) -> None:
    assert make_peer(peer).supports(make_problem(applies))
    if not_applies is not None:
        assert not make_peer(peer).supports(make_problem(not_applies))


def _trace(problem: str, peer: str, seed: int, best: float) -> RunTrace:
    record = TrialRecord(value=best, cost=1.0, end_s=1.0)
    return RunTrace(problem=problem, peer=peer, seed=seed, trials=[record], budget=1.0)


def test_report_has_every_strategy_on_every_problem() -> None:
    bests = {TPE: 0.5, RANDOM: 1.0, "kubetune": 0.1, "kubetune-gp": 0.1, "kubetune-rl": 2.0}
    traces = [
        _trace("branin", peer, seed, best + 0.01 * seed)
        for peer, best in bests.items()
        for seed in range(5)
    ]
    info = {
        "problems": {"branin": {"family": "synthetic", "optimum": 0.0, "max_budget": None}},
        "unavailable_peers": {"kubetune-smac": "not installed: smac"},
        "skipped": [],
    }
    text = "\n".join(report._every_strategy(analysis.summarize(traces, info), info))
    assert "## Every strategy on every problem" in text
    header = next(line for line in text.splitlines() if line.startswith("| problem"))
    assert header.split(" | ")[1:3] == [TPE, RANDOM]
    assert all(f" {p} " in header + " " for p in STRATEGY_PEERS)
    row = next(line for line in text.splitlines() if line.startswith("| branin"))
    cells = dict(zip(header.strip("| ").split(" | "), row.strip("| ").split(" | "), strict=True))
    assert cells["kubetune-gp"].endswith(" better") and cells["kubetune-rl"].endswith(" worse")
    assert cells["kubetune-bohb"] == "n/a" and cells["kubetune-grid"] == "n/a"  # no fidelity
    assert cells["kubetune-evolution"] == "-"  # applies, did not run
    assert "peer kubetune-smac: not installed: smac" in text
    # a problem random search already solves has no scores, so no verdicts either
    solved = [_trace("solved", peer, seed, 0.0) for peer in bests for seed in range(5)]
    info["problems"]["solved"] = {"family": "synthetic", "optimum": 0.0, "max_budget": None}
    text = "\n".join(report._every_strategy(analysis.summarize(traces + solved, info), info))
    row = next(line for line in text.splitlines() if line.startswith("| solved"))
    assert "degenerate: random's median is the optimum" in row and "better" not in row
    # a run of the default peers only has no such section
    default_only = [t for t in traces if t.peer in (TPE, RANDOM, "kubetune")]
    assert report._every_strategy(analysis.summarize(default_only, info), info) == []


@pytest.mark.slow
def test_darts_peer_scores_its_derived_architecture_on_the_torch_problem(tmp_path: Path) -> None:
    problem = make_problem("torch-mlp-digits")
    trace = make_peer("kubetune-darts").run(problem, 1, 0, tmp_path)
    assert problem.darts is not None
    search, final = trace.trials
    assert search.value is None and search.cost == 2 * problem.darts.epochs
    assert final.cost == problem.max_budget and final.value is not None
    assert 0.0 <= final.value < 0.3 and math.isfinite(trace.wall_s)  # a digits MLP learns


@pytest.mark.slow
def test_strategies_run_end_to_end(tmp_path: Path) -> None:
    """``run.py --smoke --strategies``, narrowed to the fidelity problem and the strategies
    that only run there, next to the two yardsticks."""
    only = ["branin-mf", TPE, RANDOM, "kubetune-bohb", "kubetune-hyperband", "kubetune-grid"]
    cmd = [sys.executable, str(BENCH / "run.py"), "--smoke", "--strategies", "--seeds", "1"]
    done = subprocess.run(
        [*cmd, "--out", str(tmp_path), "--only", *only],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["overhead"] is None and summary["scaling"] is None  # quality only
    peers = summary["quality"]["problems"]["branin-mf"]["peers"]
    assert set(peers) == {TPE, RANDOM, "kubetune-bohb", "kubetune-hyperband"}  # grid: n/a
    assert all(math.isfinite(b) for p in peers.values() for b in p["best"])
    results = (tmp_path / "RESULTS.md").read_text()
    assert "## Every strategy on every problem" in results
    assert "--strategies" in results
