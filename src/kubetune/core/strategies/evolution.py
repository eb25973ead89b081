"""Regularized (aging) evolution, suited to architecture spaces.

Each new trial copies the best of a few random members of the population (the most recent
completed trials) and mutates one parameter. Old members age out, which keeps the search
from clinging to an early lucky config. The child is decided in ``before_trial``; each
parameter the trial then suggests takes the child's value, and anything the child lacks
(the mutated parameter, new layers after a layer-count mutation) is drawn at random.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from optuna import Study
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState


class RegularizedEvolutionSampler(BaseSampler):
    def __init__(
        self, *, population_size: int = 20, sample_size: int = 5, seed: int | None = None
    ) -> None:
        if population_size < 2:
            raise ValueError("population_size: must be >= 2")
        if not 1 <= sample_size <= population_size:
            raise ValueError("sample_size: must be between 1 and population_size")
        self.population_size = population_size
        self.sample_size = sample_size
        self._rng = np.random.RandomState(seed)
        self._random = RandomSampler(seed=seed)
        self._children: dict[int, dict[str, Any]] = {}

    def reseed_rng(self) -> None:
        self._rng.seed()
        self._random.reseed_rng()

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(completed) < self.population_size:
            return  # still building the initial random population
        population = sorted(completed, key=lambda t: t.number)[-self.population_size :]
        picks = self._rng.choice(len(population), size=self.sample_size, replace=False)
        contenders = [population[i] for i in picks]
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        parent = max(contenders, key=lambda t: sign * float(t.value or 0.0))
        self._children[trial._trial_id] = self._mutate(parent)

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

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        child = self._children.get(trial._trial_id, {})
        if param_name in child:
            value = child[param_name]
            try:
                if param_distribution._contains(param_distribution.to_internal_repr(value)):
                    return value
            except (ValueError, TypeError):
                pass  # the range changed since the parent ran: draw afresh
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._children.pop(trial._trial_id, None)
