"""Base of samplers that decide a whole config before a trial suggests anything.

Grid search and evolution both pick a config in ``before_trial`` and then hand it out one
parameter at a time as the trial suggests them (define-by-run). Whatever the plan lacks, or
no longer fits the space (a new layer, a changed range), is drawn at random.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

from optuna import Study
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.trial import FrozenTrial, TrialState

from kubetune.core.optuna_compat import distribution_contains, trial_id


class PlannedConfigSampler(BaseSampler):
    def __init__(self, *, seed: int | None = None) -> None:
        self._fallback = RandomSampler(seed=seed)
        self._plans: dict[int, dict[str, Any]] = {}  # trial_id -> planned flat params

    @abstractmethod
    def plan(self, study: Study, trial: FrozenTrial) -> dict[str, Any] | None:
        """The config for this trial, or None to sample it at random."""

    def reseed_rng(self) -> None:
        self._fallback.reseed_rng()

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        planned = self.plan(study, trial)
        if planned is not None:
            self._plans[trial_id(trial)] = planned

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        planned = self._plans.get(trial_id(trial), {})
        if param_name in planned:
            value = planned[param_name]
            # not contained: the space changed since this config was planned; draw afresh
            if distribution_contains(param_distribution, value):
                return value
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._plans.pop(trial_id(trial), None)
