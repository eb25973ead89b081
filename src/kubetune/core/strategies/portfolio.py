"""A portfolio of samplers that take turns: GP and TPE by default.

Why: on problems with smooth or tabulated objectives optuna's GP beats its TPE, but on a
plateau objective (a decision tree's cross-validated error: a step function of its four
parameters) the GP settles on a plateau, and nothing in the space tells the two kinds apart
before the search starts. Letting the two members propose alternate trials, each fitted on
every finished trial, keeps much of GP's lead where it leads and TPE's robustness where GP
stalls. Measured (10 seeds, 100 trials, ``benchmarks/run.py --standard``; RESULTS.md):
sklearn-dt-wine, normalized score GP alone 1.45, the portfolio 1.35, optuna's TPE 1.00 (GP
alone significantly worse, p = 0.042; the portfolio not, p = 0.12); in
``benchmarks/strategies.py`` the portfolio beat TPE on 6 of 11 problems, GP alone on 9
(``strategies-results.md``). With 20 seeds the portfolio is significantly worse than TPE on
sklearn-dt-wine too (1.28 against 1.01, p = 0.036): turns soften the plateau, they do not
remove it.

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
