"""Grid search over spaces with conditions and per-layer parameters.

optuna's own GridSampler needs one fixed set of parameter names, which conditional and
architecture spaces do not have; here every config is enumerated up front instead.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from optuna import Study
from optuna.trial import FrozenTrial

from kubetune.core.strategies.planned import PlannedConfigSampler

GRID_ID_ATTR = "kubetune:grid_id"


class ConditionalGridSampler(PlannedConfigSampler):
    def __init__(
        self, grid: Sequence[dict[str, Any]], *, seed: int | None = None, shuffle: bool = True
    ) -> None:
        self._grid = list(grid)
        self._order = list(range(len(self._grid)))
        if shuffle:  # a budget smaller than the grid still covers the space evenly
            random.Random(seed).shuffle(self._order)
        super().__init__(seed=seed)

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

    def plan(self, study: Study, trial: FrozenTrial) -> dict[str, Any] | None:
        if "fixed_params" in trial.system_attrs:
            return None  # a retry of an earlier config: it carries its own params
        used = self.used_ids(study)
        grid_id = next((i for i in self._order if i not in used), None)
        if grid_id is None:
            return None  # exhausted: the loop stops asking; a stray ask samples at random
        study._storage.set_trial_system_attr(trial._trial_id, GRID_ID_ATTR, grid_id)
        return self._grid[grid_id]
