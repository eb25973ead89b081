"""A portfolio of samplers that take turns: GP and TPE by default.

Why: on problems with smooth or tabulated objectives optuna's GP beats its TPE, but on a
plateau objective (a decision tree's cross-validated error: piecewise constant in its four
parameters) the GP was significantly worse than TPE, even worse than random search, and
nothing in the space tells the two kinds apart before the search starts. Letting the two
members propose alternate trials, each fitted on every finished trial, keeps most of GP's
lead where it leads and TPE's robustness where GP stalls (``benchmarks/portfolio.py``, 10
seeds, 100 trials: sklearn-dt-wine GP 0.0944, TPE 0.0844, the portfolio 0.0850; Branin and
Hartmann-6 the portfolio matches GP; see README "Choosing a strategy").

Trial ``n`` past the start-up goes to member ``(n - n_startup_trials) % len(members)``. The
choice is a function of the trial number only, so a restarted controller, parallel trials
and a resumed study all hand the same trial to the same member, with no state to store. The
start-up trials are drawn at random by the portfolio itself, so the members' own seeded
random start-ups cannot propose the same config twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from optuna import Study
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.trial import FrozenTrial, TrialState

#: members that keep no state of their own outside the study's trials: each one can model
#: trials another member proposed (CMA-ES, evolution, RL, SMAC and BOHB track their own
#: proposals, and would see the others' as foreign)
PORTFOLIO_MEMBERS = ("gp", "tpe", "random")


class PortfolioSampler(BaseSampler):
    def __init__(
        self,
        members: Sequence[BaseSampler],
        *,
        n_startup_trials: int = 10,
        seed: int | None = None,
    ) -> None:
        if not members:
            raise ValueError("a portfolio needs at least one member")
        self._members = list(members)
        self._n_startup_trials = n_startup_trials
        self._startup = RandomSampler(seed=seed)

    def member_for(self, number: int) -> BaseSampler:
        """The sampler that proposes trial ``number``."""
        if number < self._n_startup_trials:
            return self._startup
        return self._members[(number - self._n_startup_trials) % len(self._members)]

    def reseed_rng(self) -> None:
        self._startup.reseed_rng()
        for member in self._members:
            member.reseed_rng()

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self.member_for(trial.number).before_trial(study, trial)

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self.member_for(trial.number).infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self.member_for(trial.number).sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        member = self.member_for(trial.number)
        return member.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self.member_for(trial.number).after_trial(study, trial, state, values)
