"""Gaussian-process BO on the ranks of the values, for spaces of categorical choices only.

optuna's ``GPSampler`` standardises the objective values and fits them as they are. When
every parameter is categorical, its kernel can only tell "same choice" from "another
choice", so the sizes of the differences between values carry little it can use, while one
diverged configuration (a loss a thousand times the median, common in neural-network
tables) stretches the standardised scale until the good half of the trials all look alike.
Fitting the values' normal scores instead (the Gaussian-copula transform: the ``k``-th best
of ``n`` becomes the ``(k - 0.5) / n`` quantile of a standard normal) keeps their order,
which is all the search needs to find the best configuration, and bounds every outlier.

Measured (``benchmarks/run.py --standard``, 10 seeds, 100 trials; benchmarks/RESULTS.md):
on the tabular problems, every one a space of categorical parameters only, ranks were
significantly better than values on HPOLib naval propulsion (mean best loss 3.2e-5
against 9.1e-5; optuna's TPE 3.8e-5) and Parkinson's telemonitoring (0.0064 against
0.0078), and not significantly different on the other nine. Real-valued and integer
spaces keep the plain GP: there the sizes of the values are what it converges with
(``benchmarks/rank_gp.py``, 10 seeds: Branin 0.451 with ranks against 0.398 with values,
Hartmann-6 -2.69 against -3.31; benchmarks/rank-gp-results.md).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import GPSampler
from optuna.study import Study
from optuna.trial import FrozenTrial
from scipy.stats import norm, rankdata

from kubetune.core.space import SearchSpace


def only_categorical(space: SearchSpace) -> bool:
    """Every searched parameter is a categorical choice (fixed ones are not searched)."""
    searched = [d for d in space.distributions().values() if not d.single()]
    return bool(searched) and all(isinstance(d, CategoricalDistribution) for d in searched)


def normal_scores(values: np.ndarray) -> np.ndarray:
    """The values' ranks as standard-normal quantiles (ties share their mean rank)."""
    return np.asarray(norm.ppf((rankdata(values) - 0.5) / len(values)), dtype=float)


class RankGPSampler(GPSampler):
    """``GPSampler`` fitted on the normal scores of the completed trials' values."""

    def _sample_relative_impl(
        self,
        study: Study,
        completed_trials: list[FrozenTrial],
        running_trials: list[FrozenTrial],
        search_space: dict[str, BaseDistribution],
    ) -> dict[str, Any]:
        # optuna's GP reads ``trial.values``; the copies carry the scores, the stored trials
        # keep their real values. Order is kept per objective, so the direction still holds.
        values = np.array([trial.values for trial in completed_trials], dtype=float)
        scored: list[FrozenTrial] = []
        if len(completed_trials) > 0:
            scores = np.column_stack([normal_scores(column) for column in values.T])
            for trial, row in zip(completed_trials, scores, strict=True):
                warped = copy.copy(trial)
                warped.values = [float(v) for v in row]
                scored.append(warped)
        return super()._sample_relative_impl(study, scored, running_trials, search_space)
