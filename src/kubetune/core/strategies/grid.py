"""Grid search over spaces with conditions and per-layer parameters.

optuna's own GridSampler needs one fixed set of parameter names, which conditional and
architecture spaces do not have; here every config is enumerated up front instead.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from optuna import Study
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.trial import FrozenTrial, TrialState

GRID_ID_ATTR = "kubetune:grid_id"


class ConditionalGridSampler(BaseSampler):
    def __init__(
        self, grid: Sequence[dict[str, Any]], *, seed: int | None = None, shuffle: bool = True
    ) -> None:
        self._grid = list(grid)
        self._order = list(range(len(self._grid)))
        if shuffle:  # a budget smaller than the grid still covers the space evenly
            random.Random(seed).shuffle(self._order)
        self._fallback = RandomSampler(seed=seed)
        self._assigned: dict[int, int] = {}  # trial_id -> grid id

    @property
    def size(self) -> int:
        return len(self._grid)

    def used_ids(self, study: Study) -> set[int]:
        return {
            int(t.system_attrs[GRID_ID_ATTR])
            for t in study.get_trials(deepcopy=False)
            if GRID_ID_ATTR in t.system_attrs
        }

    def remaining(self, study: Study) -> int:
        return self.size - len(self.used_ids(study))

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        if "fixed_params" in trial.system_attrs:
            return  # a retry of an earlier config: it carries its own params
        used = self.used_ids(study)
        grid_id = next((i for i in self._order if i not in used), None)
        if grid_id is None:
            return  # exhausted: the loop stops asking; a stray ask samples at random
        study._storage.set_trial_system_attr(trial._trial_id, GRID_ID_ATTR, grid_id)
        self._assigned[trial._trial_id] = grid_id

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        grid_id = self._assigned.get(trial._trial_id)
        if grid_id is not None and param_name in self._grid[grid_id]:
            return self._grid[grid_id][param_name]
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._assigned.pop(trial._trial_id, None)
