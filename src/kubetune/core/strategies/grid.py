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

from kubetune.core import optuna_compat as compat
from kubetune.core.attrs import FIXED_PARAMS, GRID_ID
from kubetune.core.strategies.planned import PlannedConfigSampler


class ConditionalGridSampler(PlannedConfigSampler):
    def __init__(
        self, grid: Sequence[dict[str, Any]], *, seed: int | None = None, shuffle: bool = True
    ) -> None:
        self._grid = list(grid)
        self._order = list(range(len(self._grid)))
        if shuffle:  # a budget smaller than the grid still covers the space evenly
            random.Random(seed).shuffle(self._order)  # noqa: S311 (an order, not a secret)
        # Grid ids already given out, read from the study once and then kept up to date as
        # this sampler hands ids out: asking costs O(1), not a scan of every trial. One
        # controller plans a study at a time (the lease), so nobody else hands ids out.
        self._used: set[int] = set()
        self._next = 0  # position in _order before which every id is used
        self._study_key: tuple[int, int] | None = None
        super().__init__(seed=seed)

    @property
    def size(self) -> int:
        return len(self._grid)

    def used_ids(self, study: Study) -> set[int]:
        key = (id(compat.storage_of(study)), compat.study_id(study))
        if key != self._study_key:
            self._study_key, self._next = key, 0
            self._used = {
                int(t.system_attrs[GRID_ID])
                for t in study.get_trials(deepcopy=False)
                if GRID_ID in t.system_attrs
            }
        return self._used

    def remaining(self, study: Study) -> int:
        return self.size - len(self.used_ids(study))

    def plan(self, study: Study, trial: FrozenTrial) -> dict[str, Any] | None:
        if FIXED_PARAMS in trial.system_attrs:
            return None  # a retry of an earlier config: it carries its own params
        used = self.used_ids(study)
        while self._next < len(self._order) and self._order[self._next] in used:
            self._next += 1
        if self._next == len(self._order):
            return None  # exhausted: the loop stops asking; a stray ask samples at random
        grid_id = self._order[self._next]
        compat.set_trial_system_attr(study, compat.trial_id(trial), GRID_ID, grid_id)
        used.add(grid_id)
        return self._grid[grid_id]
