"""Deterministic, nested, stratified subsets of the training rows (data-fraction fidelity).

Nested: the rows of a smaller fraction are part of every larger one, so a trial promoted
from 1/9 to 1/3 of the data sees the same rows again plus new ones, and trials compared at
one budget all saw the same rows (the subset depends on the seed and the labels only).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["MIN_ROWS_PER_CLASS", "subset_indices"]

# A classifier needs every class, and cross-validated or neighbour-based estimators a few
# rows of each: a small fraction never drops a class below this (or all its rows).
MIN_ROWS_PER_CLASS = 2


def subset_indices(y: np.ndarray, fraction: float, *, seed: int, stratified: bool) -> np.ndarray:
    """Sorted indices of ``fraction`` of the rows of ``y``.

    ``stratified`` keeps each class's share (and at least ``MIN_ROWS_PER_CLASS`` of it);
    otherwise the rows are drawn uniformly. The order of the draw is fixed by ``seed``.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    n = len(y)
    rng = np.random.default_rng(seed)
    if fraction >= 1.0:
        return np.arange(n)
    if not stratified:
        order = rng.permutation(n)
        return np.sort(order[: max(1, math.ceil(fraction * n))])
    chosen: list[np.ndarray] = []
    for label in np.unique(y):  # sorted labels: the draw does not depend on row order
        rows = np.flatnonzero(y == label)
        take = min(len(rows), max(MIN_ROWS_PER_CLASS, math.ceil(fraction * len(rows))))
        chosen.append(rng.permutation(rows)[:take])
    return np.sort(np.concatenate(chosen))
