"""From traces to the quality figures: scores, intervals, ranks, significance, time to target."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from typing import Any

import numpy as np

from harness import metrics
from harness.peers import DEFAULT_KUBETUNE, RANDOM, TPE
from harness.trace import RunTrace

# The value time-to-target aims at: the loss random search reaches in 3 of 4 seeds (the 75th
# percentile of its final bests), so random's own median time is finite.
TARGET_QUANTILE = 75


def summarize(traces: list[RunTrace], info: dict[str, Any]) -> dict[str, Any]:
    by_problem: dict[str, dict[str, list[RunTrace]]] = defaultdict(lambda: defaultdict(list))
    for t in traces:
        if t.error is None and t.trials:
            by_problem[t.problem][t.peer].append(t)
    problems: dict[str, Any] = {}
    for name, per_peer in by_problem.items():
        problems[name] = _problem(name, per_peer, info["problems"].get(name, {}))
    scores = {
        name: {peer: s["mean"] for peer, s in p["peers"].items()}
        for name, p in problems.items()
        if not p["degenerate"]
    }
    return {
        "problems": problems,
        "ranks": metrics.average_ranks(scores),
        "families": _families(problems),
        "errors": [f"{t.problem} / {t.peer} / seed {t.seed}: {t.error}" for t in traces if t.error],
    }


def _problem(
    name: str, per_peer: dict[str, list[RunTrace]], meta: dict[str, Any]
) -> dict[str, Any]:
    bests = {peer: [metrics.best_within(t) for t in runs] for peer, runs in per_peer.items()}
    known = meta.get("optimum")
    all_values = [v for vs in bests.values() for v in vs if math.isfinite(v)]
    optimum = known if known is not None else (min(all_values) if all_values else math.nan)
    random_bests = [b for b in bests.get(RANDOM, []) if math.isfinite(b)]
    random_median = statistics.median(random_bests) if random_bests else math.nan
    peers: dict[str, Any] = {}
    for peer, values in bests.items():
        scores = [metrics.normalized_score(b, optimum, random_median) for b in values]
        finite = [s for s in scores if math.isfinite(s)]
        peers[peer] = {
            "seeds": len(values),
            "best": values,
            "scores": scores,
            "mean": statistics.fmean(finite) if finite else math.nan,
            "median": statistics.median(finite) if finite else math.nan,
            "ci": metrics.bootstrap_ci(finite),
            "wall_s": statistics.median(t.wall_s for t in per_peer[peer]),
            "trials": statistics.median(len(t.trials) for t in per_peer[peer]),
        }
    result: dict[str, Any] = {
        "family": meta.get("family", ""),
        "optimum": optimum,
        "optimum_known": known is not None,
        "random_median": random_median,
        "degenerate": not math.isfinite(metrics.normalized_score(optimum, optimum, random_median)),
        "max_budget": meta.get("max_budget"),
        "peers": peers,
    }
    if DEFAULT_KUBETUNE in bests and TPE in bests:
        cmp = metrics.compare(bests[DEFAULT_KUBETUNE], bests[TPE])
        result["kubetune_vs_tpe"] = {"p_value": cmp.p_value, "verdict": cmp.verdict}
    if random_bests:
        result["ttt"] = _time_to_target(
            per_peer, float(np.percentile(random_bests, TARGET_QUANTILE))
        )
    return result


def _time_to_target(per_peer: dict[str, list[RunTrace]], target: float) -> dict[str, Any]:
    ttt: dict[str, Any] = {"target": target, "peers": {}}
    for axis in ("cost", "wall"):
        times = {
            peer: [metrics.time_to_target(t, target, axis) for t in runs]
            for peer, runs in per_peer.items()
        }
        caps = {peer: _run_length(runs, axis) for peer, runs in per_peer.items()}
        for peer, values in times.items():
            row = ttt["peers"].setdefault(peer, {})
            row[axis] = values
            row[f"median_{axis}"] = metrics.median_or_inf(values)
            for key, base in (("random", RANDOM), ("tpe", TPE)):
                if base in times:
                    value, bound = metrics.speedup(times[base], values, caps[base])
                    row[f"speedup_vs_{key}_{axis}"] = value
                    row[f"speedup_vs_{key}_{axis}_lower_bound"] = bound
    return ttt


def _run_length(runs: list[RunTrace], axis: str) -> float:
    """The longest run's cost (full evaluations) or wall seconds: where a run that never
    reached the target is censored."""
    if axis == "cost":
        return max(t.total_cost / t.full_cost for t in runs)
    return max(t.wall_s for t in runs)


def _families(problems: dict[str, Any]) -> dict[str, Any]:
    """Per family and peer: the mean over problems of the mean score, with a bootstrap CI
    over every (problem, seed) score."""
    out: dict[str, Any] = {}
    grouped: dict[str, dict[str, list[tuple[float, list[float]]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for p in problems.values():
        if p["degenerate"]:
            continue
        for peer, s in p["peers"].items():
            grouped[p["family"]][peer].append((s["mean"], s["scores"]))
    for family, per_peer in grouped.items():
        out[family] = {}
        for peer, rows in per_peer.items():
            means = [m for m, _ in rows if math.isfinite(m)]
            every = [x for _, xs in rows for x in xs if math.isfinite(x)]
            out[family][peer] = {
                "problems": len(rows),
                "mean": statistics.fmean(means) if means else math.nan,
                "median": statistics.median(every) if every else math.nan,
                "ci": metrics.bootstrap_ci(every),
            }
    return out
