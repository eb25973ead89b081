"""A portfolio of samplers: GP and TPE by default, each trial handed to the member whose
proposals have improved the best value most often (``allocation: credit``), or in turn by
trial number (``allocation: turns``).

Why: on problems with smooth or tabulated objectives optuna's GP beats its TPE, but on a
plateau objective (a decision tree's cross-validated error: a step function of its four
parameters) the GP settles on a plateau, and nothing in the space tells the two kinds apart
before the search starts. What the search itself shows is which member's trials move the
best value. Measured (``benchmarks/run.py --standard``, 20 seeds, 100 trials; RESULTS.md):
on sklearn-dt-wine members in turn were significantly worse than optuna's TPE (normalized
1.28 against 1.01, p = 0.036), the GP's half of the trials spent on the plateau and
crowding TPE's model of the good region; credited, the GP loses its turns there and the
search is not significantly different from TPE, while on branin and hartmann6 the GP earns
most turns and keeps its lead.

Credit (``allocation: credit``): a finished trial is a *win* for the member that proposed
it when its value beats every earlier-numbered finished trial. A member's rate is
``(wins + 1) / (turns + 2)`` (the mean of a Beta(1, 1) posterior on "this member's next
trial improves"); the next trial goes to the member with the highest rate, the one that
proposed least recently on a tie. A member that has not proposed for ``explore_every``
trials gets the next one, so a member that lost early can win its turns back. The pick is
written to the trial's system attributes, so a restarted controller, another process with
parallel trials and a resumed study all hand a trial to the member first chosen for it.

Turns (``allocation: turns``): trial ``n`` past the start-up goes to member
``(n - n_startup_trials) % len(members)``, a function of the trial number only.

Repeats (``deduplicate``, on by default): in a space of integers and categories the models
often propose a config already tried (on the harness's k-NN cells, a space of 120 configs,
only 51 to 76 of 100 trials were distinct). With a deterministic objective a repeat teaches
nothing, so the portfolio asks the other members for their proposal, then draws at random
(up to 64 draws) until it has an unseen config, and marks the trial
(``kubetune:portfolio_replaced``); the member that proposed the repeat earns no win from the
stand-in. Only a whole config is compared, so conditional spaces, whose inactive parameters
are drawn one by one, keep what the member proposed.

In every case the start-up trials are drawn at random by the portfolio itself, so the members'
own seeded random start-ups cannot propose the same config twice, and every member is
fitted on every finished trial, whoever proposed it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from optuna import Study
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from kubetune.core.study_state import config_key

#: members that keep no state of their own outside the study's trials: each one can model
#: trials another member proposed (CMA-ES, evolution, RL, SMAC and BOHB track their own
#: proposals, and would see the others' as foreign)
PORTFOLIO_MEMBERS = ("gp", "tpe", "random")
ALLOCATIONS = ("credit", "turns")
#: the trial system attribute that records which member proposed it (-1: the start-up)
MEMBER_ATTR = "kubetune:portfolio_member"
#: set on a trial whose member proposed a config already tried, replaced by an unseen one
REPLACED_ATTR = "kubetune:portfolio_replaced"
STARTUP = -1
#: random draws tried for an unseen config before a repeat is accepted
UNSEEN_DRAWS = 64


class PortfolioSampler(BaseSampler):
    def __init__(
        self,
        members: Sequence[BaseSampler],
        *,
        n_startup_trials: int = 10,
        allocation: str = "credit",
        explore_every: int = 4,
        deduplicate: bool = True,
        seed: int | None = None,
    ) -> None:
        if not members:
            raise ValueError("a portfolio needs at least one member")
        if allocation not in ALLOCATIONS:
            raise ValueError(f"allocation: one of {', '.join(ALLOCATIONS)} (got {allocation!r})")
        self._members = list(members)
        self._n_startup_trials = n_startup_trials
        self._allocation = allocation
        self._explore_every = explore_every
        self._deduplicate = deduplicate
        self._startup = RandomSampler(seed=seed)
        # trial number -> member index; the storage's copy is the one that survives a restart
        self._picked: dict[int, int] = {}

    def member_for(self, number: int) -> BaseSampler:
        """The member that proposes trial ``number`` when members take turns."""
        return self._sampler(self._turn(number))

    def _turn(self, number: int) -> int:
        if number < self._n_startup_trials:
            return STARTUP
        return (number - self._n_startup_trials) % len(self._members)

    def _sampler(self, index: int) -> BaseSampler:
        return self._startup if index == STARTUP else self._members[index]

    def choose(self, study: Study, number: int) -> int:
        """The member index for trial ``number`` from the trials numbered below it."""
        if self._allocation == "turns" or number < self._n_startup_trials:
            return self._turn(number)
        return _credited_choice(
            [t for t in study.get_trials(deepcopy=False) if t.number < number],
            len(self._members),
            study.direction if len(study.directions) == 1 else None,
            self._explore_every,
        )

    def member_index(self, study: Study, trial: FrozenTrial) -> int:
        """Which member proposes ``trial``: the pick made when it started, wherever it ran."""
        if trial.number in self._picked:
            return self._picked[trial.number]
        recorded = trial.system_attrs.get(MEMBER_ATTR)
        if recorded is None:  # the snapshot predates before_trial's write: read it again
            recorded = study._storage.get_trial(trial._trial_id).system_attrs.get(MEMBER_ATTR)
        index = int(recorded) if recorded is not None else self.choose(study, trial.number)
        self._picked[trial.number] = index
        return index

    def _member(self, study: Study, trial: FrozenTrial) -> BaseSampler:
        return self._sampler(self.member_index(study, trial))

    def reseed_rng(self) -> None:
        self._startup.reseed_rng()
        for member in self._members:
            member.reseed_rng()

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        if MEMBER_ATTR not in trial.system_attrs:
            index = self.choose(study, trial.number)
            study._storage.set_trial_system_attr(trial._trial_id, MEMBER_ATTR, index)
            self._picked[trial.number] = index
        self._member(study, trial).before_trial(study, trial)

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self._member(study, trial).infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        index = self.member_index(study, trial)
        proposal = self._sampler(index).sample_relative(study, trial, search_space)
        if not self._deduplicate or index == STARTUP or set(proposal) != set(search_space):
            return proposal  # only a whole config can be compared (not a conditional one)
        seen = _tried_configs(study, trial, search_space)
        if _config_key(proposal, search_space) not in seen:
            return proposal
        # a repeat of a tried config teaches nothing: another member's, else an unseen draw
        for other, member in enumerate(self._members):
            if other == index:
                continue
            alternative = member.sample_relative(study, trial, search_space)
            whole = set(alternative) == set(search_space)
            if whole and _config_key(alternative, search_space) not in seen:
                return self._replaced(study, trial, alternative)
        for _ in range(UNSEEN_DRAWS):
            draw = {
                name: self._startup.sample_independent(study, trial, name, dist)
                for name, dist in search_space.items()
            }
            if _config_key(draw, search_space) not in seen:
                return self._replaced(study, trial, draw)
        return proposal  # (nearly) every config tried: the repeat it is

    def _replaced(self, study: Study, trial: FrozenTrial, config: dict[str, Any]) -> dict[str, Any]:
        study._storage.set_trial_system_attr(trial._trial_id, REPLACED_ATTR, True)
        return config

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        member = self._member(study, trial)
        return member.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._member(study, trial).after_trial(study, trial, state, values)


def _config_key(config: dict[str, Any], space: dict[str, BaseDistribution]) -> tuple[Any, ...]:
    """The config's identity over the searched parameters (the study's, fixed ones aside)."""
    return config_key({name: config.get(name) for name in space})


def _tried_configs(
    study: Study, trial: FrozenTrial, space: dict[str, BaseDistribution]
) -> set[tuple[Any, ...]]:
    """Configs of the study's other trials (any state: a running one is being tried)."""
    return {
        _config_key(t.params, space)
        for t in study.get_trials(deepcopy=False)
        if t.number != trial.number and set(space) <= set(t.params)
    }


def _credited_choice(
    earlier: Sequence[FrozenTrial],
    n_members: int,
    direction: StudyDirection | None,
    explore_every: int,
) -> int:
    """The member with the best win rate among ``earlier`` trials (see the module doc)."""
    turns, wins = [0] * n_members, [0] * n_members
    last_turn = [-math.inf] * n_members  # position among the members' trials, not numbers
    sign = -1.0 if direction == StudyDirection.MAXIMIZE else 1.0
    best = math.inf
    position = 0
    for trial in sorted(earlier, key=lambda t: t.number):
        index = trial.system_attrs.get(MEMBER_ATTR)
        member = int(index) if index is not None and 0 <= int(index) < n_members else None
        if member is not None:
            turns[member] += 1
            last_turn[member] = position
            position += 1
        if trial.state != TrialState.COMPLETE or direction is None or not trial.values:
            continue
        value = sign * trial.values[0]
        if value < best:
            # a member whose proposal was a repeat (replaced) earns nothing from the stand-in
            if member is not None and not trial.system_attrs.get(REPLACED_ATTR):
                wins[member] += 1
            best = value
    idle = [i for i in range(n_members) if position - last_turn[i] > explore_every]
    if idle:  # the longest idle first
        return min(idle, key=lambda i: last_turn[i])
    return max(range(n_members), key=lambda i: ((wins[i] + 1) / (turns[i] + 2), -last_turn[i]))
