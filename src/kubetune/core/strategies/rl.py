"""A REINFORCE controller over the space's choices, in the spirit of NAS with RL
(Zoph and Le, 2017), kept light: numpy, one softmax policy per flat parameter.

* every flat parameter is one decision: categorical choices as they are (per-layer
  parameters are one decision per layer, ``units_0``, ``units_1``...), integers with at
  most ``bins`` values one action per value, other numbers discretised into ``bins`` equal
  cells of their (log) range, the value taken at the cell's centre;
* a finished trial is a reward (the objective, negated when minimising); the policy takes
  one gradient step ``lr * A * grad log pi(a)`` for the actions that trial took, with the
  advantage ``A`` = reward minus an exponential moving-average **baseline**, divided by a
  moving estimate of the rewards' spread so one ``lr`` fits any metric's scale;
* asynchronous: before each proposal the policy learns from every trial finished since the
  last one, in the order they finished, so parallel trials keep it busy; a restarted
  controller replays the study's finished trials in that order and gets the same policy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from optuna import Study
from optuna.distributions import BaseDistribution, IntDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from kubetune.core.optuna_compat import distribution_contains
from kubetune.core.strategies.encoding import Dimension, encode_space

__all__ = ["ReinforceSampler"]


class _Decision:
    """One flat parameter as a set of actions."""

    def __init__(self, dim: Dimension, bins: int) -> None:
        self.dim = dim
        dist = dim.distribution
        if dim.is_categorical:
            self.size = dim.n_choices
        elif isinstance(dist, IntDistribution) and not dist.log:
            self.size = min((dist.high - dist.low) // dist.step + 1, bins)
        else:
            self.size = bins
        self.logits = np.zeros(self.size)

    def probabilities(self) -> np.ndarray:
        z = np.exp(self.logits - self.logits.max())
        return np.asarray(z / z.sum())

    def value(self, action: int) -> Any:
        if self.dim.is_categorical:
            return self.dim.decode(action)
        return self.dim.decode((action + 0.5) / self.size)

    def action(self, value: Any) -> int:
        u = self.dim.encode(value)
        if self.dim.is_categorical:
            return int(u)
        return min(int(u * self.size), self.size - 1)


class ReinforceSampler(BaseSampler):
    def __init__(
        self,
        distributions: Mapping[str, BaseDistribution],
        *,
        lr: float = 0.2,
        baseline_decay: float = 0.9,
        bins: int = 10,
        seed: int | None = None,
    ) -> None:
        if not 0.0 <= baseline_decay < 1.0:
            raise ValueError("baseline_decay: must be in [0, 1)")
        self.decisions = {d.name: _Decision(d, bins) for d in encode_space(distributions)}
        self._distributions = {n: d.dim.distribution for n, d in self.decisions.items()}
        self.lr = lr
        self.baseline_decay = baseline_decay
        self.baseline: float | None = None
        self._spread = 0.0
        self._learned: set[int] = set()  # numbers of the trials the policy has learned from
        self._rng = np.random.RandomState(seed)
        self._random = RandomSampler(seed=seed)

    def reseed_rng(self) -> None:
        self._rng.seed()
        self._random.reseed_rng()

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return dict(self._distributions)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        self.learn(study)
        out = {}
        for name, decision in self.decisions.items():
            action = self._rng.choice(decision.size, p=decision.probabilities())
            out[name] = decision.value(int(action))
        return out

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    # --- learning ------------------------------------------------------------------------

    def learn(self, study: Study) -> None:
        """One policy step per finished trial not learned from yet, in finishing order."""
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        fresh = [
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.number not in self._learned
        ]
        fresh.sort(key=lambda t: (t.datetime_complete or t.datetime_start, t.number))
        for t in fresh:
            self._learned.add(t.number)
            if t.value is not None and math.isfinite(t.value):
                self._step(t.params, sign * t.value)

    def _step(self, params: Mapping[str, Any], reward: float) -> None:
        if self.baseline is None:
            self.baseline = reward  # the first reward sets the baseline: no update
            return
        advantage = reward - self.baseline
        decay = self.baseline_decay
        self._spread = decay * self._spread + (1 - decay) * advantage**2
        self.baseline = decay * self.baseline + (1 - decay) * reward
        scaled = advantage / (math.sqrt(self._spread) + 1e-12)
        for name, decision in self.decisions.items():
            value = params.get(name)
            if name not in params or not distribution_contains(decision.dim.distribution, value):
                continue  # inactive in this trial: that decision was not taken
            grad = -decision.probabilities()
            grad[decision.action(value)] += 1.0  # d log pi(a) / d logits
            decision.logits += self.lr * scaled * grad
