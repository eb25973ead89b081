"""Run the problem x peer x seed matrix and keep every trace (the raw data of the report)."""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.modes import Mode
from harness.peers import make_peer
from harness.problems import make_problem
from harness.trace import RunTrace


def unavailable_peers(mode: Mode) -> dict[str, str]:
    """peer -> why it cannot run here (a module of the ``bench`` extra is missing)."""
    out = {}
    for name in mode.peers:
        missing = make_peer(name).missing()
        if missing:
            out[name] = f"not installed: {', '.join(missing)} (pip install -e '.[bench]')"
    return out


def run_matrix(
    mode: Mode,
    workdir: Path,
    say: Callable[[str], None] = print,
    unavailable: dict[str, str] | None = None,
) -> tuple[list[RunTrace], dict[str, Any]]:
    """Every run of the mode; a run that raises is kept with its error, never fatal."""
    skipped = unavailable_peers(mode) if unavailable is None else unavailable
    info: dict[str, Any] = {"unavailable_peers": skipped, "problems": {}, "skipped": []}
    traces: list[RunTrace] = []
    for problem_name in mode.problems:
        problem = make_problem(problem_name)
        missing = [m for m in problem.needs if _missing(m)]
        if missing:
            info["skipped"].append(f"{problem_name}: not installed: {', '.join(missing)}")
            continue
        trials = mode.trials_for(problem.family)
        info["problems"][problem_name] = {
            "family": problem.family,
            "optimum": problem.optimum,
            "trials": trials,
            "max_budget": problem.max_budget,
            "cost_unit": problem.cost_unit,
        }
        for peer_name in mode.peers:
            if peer_name in skipped:
                continue
            peer = make_peer(peer_name)
            if not peer.supports(problem):
                continue
            seeds = mode.seed_range()
            if peer_name.startswith("ray-"):
                if problem_name not in mode.ray_problems:
                    continue
                seeds = mode.seed_range(mode.ray_seeds)
            n = peer.trials_for(problem, trials)
            for seed in seeds:
                say(f"{problem_name}: {peer_name}, seed {seed}, {n} trials")
                try:
                    trace = peer.run(problem, n, seed, workdir)
                except Exception as exc:  # a broken peer is reported, not fatal
                    trace = RunTrace(problem=problem_name, peer=peer_name, seed=seed)
                    trace.error = f"{type(exc).__name__}: {exc}"
                    say(f"  failed: {trace.error}\n{traceback.format_exc(limit=3)}")
                trace.full_cost = problem.full_cost
                trace.budget = trials * problem.full_cost * peer.budget_factor
                traces.append(trace)
    return traces, info


def _missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None


def save(path: Path, traces: list[RunTrace], info: dict[str, Any]) -> None:
    path.write_text(json.dumps({"info": info, "traces": [t.to_dict() for t in traces]}, indent=1))


def load(path: Path) -> tuple[list[RunTrace], dict[str, Any]]:
    data = json.loads(path.read_text())
    return [RunTrace.from_dict(t) for t in data["traces"]], data["info"]
