"""The figures the report is made of: pure functions of traces and numbers.

* anytime curves: the best loss so far against cost (full-evaluation equivalents) or wall time;
* ``normalized_score``: 0 at the optimum (or best known), 1 at random search's median;
* ``bootstrap_ci``: a percentile bootstrap (scipy) of a statistic over seeds;
* ``average_ranks``: each problem ranks the peers (ties share a mean rank), then averaged;
* ``time_to_target`` and ``speedup``: when a run first reaches a value, and how much sooner
  than a baseline (medians over seeds);
* ``compare``: is one peer significantly better or worse than another on a problem
  (two-sided Mann-Whitney U over seeds).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from harness.trace import RunTrace

INF = math.inf


def anytime(trace: RunTrace, axis: str = "cost") -> tuple[list[float], list[float]]:
    """(x, best so far) at each trial that improved the best; x in full evaluations or s."""
    xs: list[float] = []
    best: list[float] = []
    spent = 0.0
    for record in trace.trials:
        spent += record.cost
        if record.value is None or (best and record.value >= best[-1]):
            continue
        xs.append(spent / trace.full_cost if axis == "cost" else record.end_s)
        best.append(record.value)
    return xs, best


def best_within(trace: RunTrace, budget: float | None = None) -> float:
    """The best loss among trials finished before the cumulative cost passed ``budget``."""
    limit = trace.budget if budget is None else budget
    best, spent = INF, 0.0
    for record in trace.trials:
        spent += record.cost
        if limit and spent > limit * (1 + 1e-9):
            break
        if record.value is not None:
            best = min(best, record.value)
    return best


def normalized_score(best: float, optimum: float, random_median: float) -> float:
    """(best - optimum) / (random's median - optimum); NaN when random already hits it."""
    span = random_median - optimum
    if not math.isfinite(best) or not math.isfinite(span):
        return math.nan if not math.isfinite(span) else INF
    if span <= 1e-12 * max(1.0, abs(optimum)):
        return math.nan  # degenerate: random search's median is the optimum
    return (best - optimum) / span


def bootstrap_ci(
    values: Sequence[float],
    statistic: Callable[..., float] = np.mean,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """A percentile bootstrap interval of ``statistic`` over ``values`` (NaN, NaN if < 2)."""
    data = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    if len(data) < 2:
        return math.nan, math.nan
    if np.all(data == data[0]):
        return float(data[0]), float(data[0])
    result = stats.bootstrap(
        (data,),
        statistic,
        confidence_level=confidence,
        n_resamples=2000,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def average_ranks(scores: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """``scores[problem][peer]`` (lower is better) -> each peer's rank averaged over problems.

    Each problem ranks only the peers that ran on it; NaN scores are left out.
    """
    ranks: dict[str, list[float]] = {}
    for per_peer in scores.values():
        present = {p: s for p, s in per_peer.items() if not math.isnan(s)}
        if not present:
            continue
        for peer, rank in zip(present, stats.rankdata(list(present.values())), strict=True):
            ranks.setdefault(peer, []).append(float(rank))
    return {peer: statistics.fmean(r) for peer, r in ranks.items()}


def time_to_target(trace: RunTrace, target: float, axis: str = "cost") -> float:
    """Cost (full evaluations) or wall seconds until the best loss is <= ``target``; inf if
    never."""
    xs, best = anytime(trace, axis)
    for x, b in zip(xs, best, strict=True):
        if b <= target:
            return x
    return INF


def median_or_inf(values: Sequence[float]) -> float:
    return float(np.median(values)) if values else INF


def speedup(
    baseline: Sequence[float], method: Sequence[float], baseline_cap: float = INF
) -> tuple[float, bool]:
    """(median(baseline) / median(method), is_lower_bound) of times to target.

    > 1 means faster than the baseline; 0 when the method's median run never reached the
    target. A baseline run that never reached it counts as ``baseline_cap`` (its whole
    budget): if that decides the baseline's median, the speed-up is only a lower bound.
    """
    m = median_or_inf(method)
    if math.isinf(m):
        return 0.0, False
    censored = math.isinf(median_or_inf(baseline))
    b = median_or_inf([min(t, baseline_cap) for t in baseline])
    if m == 0:
        return INF, censored
    return b / m, censored


@dataclass(frozen=True)
class Comparison:
    p_value: float
    #: "better", "worse" or "same" for the first sample at level ``alpha``
    verdict: str


def compare(a: Sequence[float], b: Sequence[float], alpha: float = 0.05) -> Comparison:
    """Is sample ``a`` (losses over seeds) significantly lower or higher than ``b``?"""
    a_ok = [x for x in a if math.isfinite(x)]
    b_ok = [x for x in b if math.isfinite(x)]
    if len(a_ok) < 2 or len(b_ok) < 2 or (set(a_ok) == set(b_ok) and len(set(a_ok)) == 1):
        return Comparison(math.nan, "same")
    p = float(stats.mannwhitneyu(a_ok, b_ok, alternative="two-sided").pvalue)
    if p >= alpha:
        return Comparison(p, "same")
    return Comparison(p, "better" if np.median(a_ok) < np.median(b_ok) else "worse")


def efficiency(work_s: float, workers: int, wall_s: float) -> float:
    """ideal / actual wall time, where ideal = total trial time / workers."""
    return (work_s / workers) / wall_s if wall_s > 0 else math.nan
