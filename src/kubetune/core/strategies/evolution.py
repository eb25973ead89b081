"""Regularized (aging) evolution, suited to architecture spaces.

Each new trial copies the best of a few random members of the population (the most recent
completed trials) and mutates one parameter. Old members age out, which keeps the search
from clinging to an early lucky config. The child is decided in ``before_trial``; each
parameter the trial then suggests takes the child's value, and anything the child lacks
(the mutated parameter, new layers after a layer-count mutation) is drawn at random.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from optuna import Study
from optuna.distributions import CategoricalDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from kubetune.core import optuna_compat as compat
from kubetune.core.attrs import PARENT
from kubetune.core.strategies.planned import PlannedConfigSampler


class RegularizedEvolutionSampler(PlannedConfigSampler):
    def __init__(
        self, *, population_size: int = 20, sample_size: int = 5, seed: int | None = None
    ) -> None:
        if population_size < 2:
            raise ValueError("population_size: must be >= 2")
        if not 1 <= sample_size <= population_size:
            raise ValueError("sample_size: must be between 1 and population_size")
        self.population_size = population_size
        self.sample_size = sample_size
        super().__init__(seed=seed)
        self._rng = np.random.RandomState(seed)

    def reseed_rng(self) -> None:
        super().reseed_rng()
        self._rng.seed()

    def plan(self, study: Study, trial: FrozenTrial) -> dict[str, Any] | None:
        completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(completed) < self.population_size:
            return None  # still building the initial random population
        population = sorted(completed, key=lambda t: t.number)[-self.population_size :]
        picks = self._rng.choice(len(population), size=self.sample_size, replace=False)
        contenders = [population[i] for i in picks]
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        parent = max(contenders, key=lambda t: sign * float(t.value or 0.0))
        # Recorded so the child can start from the parent's weights (weight inheritance).
        compat.set_user_attr_before_trial(study, trial, PARENT, parent.number)
        return self._mutate(parent)

    def _mutate(self, parent: FrozenTrial) -> dict[str, Any]:
        child = dict(parent.params)
        if not child:
            return child
        names = sorted(child)
        victim = names[self._rng.randint(len(names))]
        dist = parent.distributions[victim]
        if isinstance(dist, CategoricalDistribution) and len(dist.choices) > 1:
            # Force a different choice so the mutation is never a no-op.
            others = [c for c in dist.choices if c != child[victim]]
            child[victim] = others[self._rng.randint(len(others))]
        else:
            del child[victim]  # redrawn at random when the trial suggests it
        return child
