"""Population-based training (``strategy: pbt``): a population trains in intervals.

Trial ``n`` is interval ``n // population_size`` of member ``n % population_size``; each
trial trains for the trainer's ``epochs`` starting from a checkpoint (its ``PARENT``):

- interval 0: a random config, from scratch;
- later: the member's previous trial is ranked among the latest finished trial of every
  member. In the bottom ``quantile`` it *exploits* a random member of the top ``quantile``
  (that member's weights and hyperparameters) and *explores*: every numeric
  hyperparameter is multiplied by 0.8 or 1.2 (clipped to its range), or with probability
  ``resample_probability`` drawn afresh, like every categorical one; otherwise it goes on
  from its own weights with its own hyperparameters.

Members whose previous interval failed start again at random. The search space must hold
only hyperparameters a member can change while it trains (the trainer names its
structural ones; ``steps.trial.check_trainer`` refuses them). The best member's
hyperparameter schedule is the params of :func:`pbt_lineage`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from optuna import Study
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from kubetune.core import optuna_compat as compat
from kubetune.core.attrs import PARENT, PBT
from kubetune.core.strategies.planned import PlannedConfigSampler

__all__ = ["PopulationBasedSampler", "pbt_lineage"]

_FACTORS = (0.8, 1.2)


class PopulationBasedSampler(PlannedConfigSampler):
    def __init__(
        self,
        *,
        population_size: int = 8,
        quantile: float = 0.25,
        resample_probability: float = 0.25,
        seed: int | None = None,
    ) -> None:
        if population_size < 2:
            raise ValueError("population_size: must be >= 2")
        if not 0.0 <= quantile <= 0.5:
            raise ValueError("quantile: must be between 0 and 0.5")
        if not 0.0 <= resample_probability <= 1.0:
            raise ValueError("resample_probability: must be between 0 and 1")
        self.population_size = population_size
        self.quantile = quantile
        self.resample_probability = resample_probability
        super().__init__(seed=seed)
        self._rng = np.random.RandomState(seed)

    def reseed_rng(self) -> None:
        super().reseed_rng()
        self._rng.seed()

    def plan(self, study: Study, trial: FrozenTrial) -> dict[str, Any] | None:
        member, interval = trial.number % self.population_size, trial.number // self.population_size
        record: dict[str, Any] = {"member": member, "interval": interval, "exploited": None}
        planned: dict[str, Any] | None = None
        if interval > 0:
            latest = self._latest_per_member(study, interval - 1)
            previous = latest.get(member)
            if previous is not None:
                source = self._exploit(previous, latest, study.direction)
                planned = dict(source.params)
                if source is not previous:
                    record["exploited"] = source.number
                    planned = self._explore(planned, source.distributions)
                compat.set_user_attr_before_trial(study, trial, PARENT, source.number)
        compat.set_user_attr_before_trial(study, trial, PBT, record)
        return planned

    def _latest_per_member(self, study: Study, interval: int) -> dict[int, FrozenTrial]:
        """Each member's trial of ``interval`` that completed (the asynchronous view)."""
        first = interval * self.population_size
        numbers = range(first, first + self.population_size)
        return {
            t.number % self.population_size: t
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.number in numbers and t.value is not None and math.isfinite(t.value)
        }

    def _exploit(
        self, previous: FrozenTrial, latest: dict[int, FrozenTrial], direction: StudyDirection
    ) -> FrozenTrial:
        sign = -1.0 if direction == StudyDirection.MAXIMIZE else 1.0
        ranked = sorted(latest.values(), key=lambda t: sign * float(t.value or 0.0))  # best first
        cut = int(len(ranked) * self.quantile)
        if cut == 0 or previous not in ranked[-cut:]:
            return previous
        return ranked[self._rng.randint(cut)]

    def _explore(
        self, params: dict[str, Any], distributions: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        explored = dict(params)
        for name, dist in distributions.items():
            if name not in explored:
                continue
            if self._rng.rand() < self.resample_probability:
                del explored[name]  # drawn at random when the trial suggests it
            elif isinstance(dist, FloatDistribution | IntDistribution):
                factor = _FACTORS[self._rng.randint(len(_FACTORS))]
                value = min(max(explored[name] * factor, dist.low), dist.high)
                if isinstance(dist, IntDistribution):
                    value = round(value)
                explored[name] = value
        return explored


def pbt_lineage(study: Study, best: FrozenTrial) -> list[FrozenTrial]:
    """The intervals that led to ``best``, oldest first: their params are its schedule.

    Follows ``PARENT`` (the checkpoint each interval started from) back to interval 0.
    """
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    chain: list[FrozenTrial] = []
    trial: FrozenTrial | None = best
    while trial is not None:
        chain.append(trial)
        parent = trial.user_attrs.get(PARENT)
        trial = by_number.get(parent) if isinstance(parent, int) else None
    return chain[::-1]
