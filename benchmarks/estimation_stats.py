"""Compute to reach a target, from the per-trial traces ``benchmarks/estimation.py`` records.

A run's trace lists its trials in the order they were asked (one worker, so also the order
they ran): each with its state, value, cost (epochs or training rows) and seconds. The
cost to a target sums the cost of every trial up to and including the first one that
*completes* at or above it; a run that never gets there counts as +inf (censored), so a
median over seeds is finite only when more than half the seeds reached the target.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = ["auto_target", "bootstrap_median", "to_target"]

#: Share of runs (over every arm and seed of a problem) whose best value the automatic
#: target lies at: the 25th percentile, so most runs, of every arm, can reach it.
AUTO_TARGET_QUANTILE = 0.25


def to_target(trace: Sequence[dict[str, Any]], target: float) -> tuple[float, float]:
    """(cost, seconds) spent until the first completed trial at ``target`` or better;
    (inf, inf) when none reached it."""
    cost = seconds = 0.0
    for trial in trace:
        cost += trial["cost"]
        seconds += trial["seconds"]
        value = trial["value"]
        if trial["state"] == "COMPLETE" and value is not None and value >= target:
            return cost, seconds
    return math.inf, math.inf


def best_value(trace: Iterable[dict[str, Any]]) -> float | None:
    values = [t["value"] for t in trace if t["state"] == "COMPLETE" and t["value"] is not None]
    return max(values) if values else None


def auto_target(runs: Iterable[dict[str, Any]], quantile: float = AUTO_TARGET_QUANTILE) -> float:
    """The problem's target when none is fixed: a low ``quantile`` of the runs' best
    values, taken over every arm and seed, so it is not tuned to any one method."""
    bests = [b for r in runs if (b := best_value(r["trace"])) is not None]
    if not bests:
        raise ValueError("no run completed a trial: no target can be derived")
    # "inverted_cdf" picks an observed best (no interpolation between two of them)
    return float(np.quantile(bests, quantile, method="inverted_cdf"))


def bootstrap_median(
    values: Sequence[float], *, resamples: int = 10_000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """(median, low, high): the median over seeds and a percentile bootstrap interval.

    Written out rather than ``scipy.stats.bootstrap`` because unreached runs are +inf and
    scipy's interpolating percentiles turn ``inf - inf`` into NaN; here every bound is a
    resampled median itself (``inverted_cdf``), so an interval may honestly end at inf.
    """
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    samples = data[rng.integers(0, data.size, size=(resamples, data.size))]
    # median of a resample: the lower middle value for an even count, never an average
    medians = np.quantile(samples, 0.5, axis=1, method="inverted_cdf")
    tail = (1.0 - level) / 2
    low, high = np.quantile(medians, [tail, 1.0 - tail], method="inverted_cdf")
    median = float(np.quantile(data, 0.5, method="inverted_cdf"))
    return median, float(low), float(high)
