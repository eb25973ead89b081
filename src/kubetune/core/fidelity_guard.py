"""A guard around rung-based schedulers: stop pruning on a step whose ranking is misleading.

Hyperband, ASHA and the median rule stop a trial because it ranks badly at a low budget,
which assumes that the low budget ranks configs as the full budget does. When it ranks them
the other way round (a regularisation that only pays off late, a learning rate that starts
slow and ends best), every cut throws away the configs that would have won, and the search
does worse than no early stopping at all.

The guard checks the assumption on the study itself: every trial that ran to the full budget
also reported at the lower steps, so for a step ``s`` the completed trials give pairs
(value at ``s``, final value). Once there are ``min_pairs`` of them, a Spearman rank
correlation below ``threshold`` marks ``s`` as misleading, and from then on the guard lets
every trial through that step (the wrapped scheduler still decides at the other steps).
Hyperband's full-budget brackets supply such pairs from the start, so a misleading step is
found after a few full evaluations. The guard never prunes more than the wrapped scheduler.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import optuna
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial, TrialState
from scipy.stats import spearmanr

__all__ = ["FidelityGuard", "GuardOptions", "GuardedHyperbandPruner", "StepJudge", "StepVerdict"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GuardOptions:
    #: completed trials with a value at the step before it is judged
    min_pairs: int = 6
    #: a step whose rank correlation with the final value is below this is misleading
    threshold: float = 0.0

    def __post_init__(self) -> None:
        if self.min_pairs < 3:
            raise ValueError(f"guard.min_pairs: must be >= 3 (got {self.min_pairs})")
        if not -1.0 <= self.threshold < 1.0:
            raise ValueError(f"guard.threshold: must be in [-1, 1) (got {self.threshold})")


@dataclass(frozen=True)
class StepVerdict:
    step: int
    pairs: int
    correlation: float  # nan until there are enough pairs (or when a side is constant)
    misleading: bool


class StepJudge:
    """Judges steps on a study's completed trials; remembers its verdicts."""

    def __init__(self, options: GuardOptions | None = None) -> None:
        self.options = options or GuardOptions()
        # step -> verdict, and the completed-trial count it was judged on: re-judged only
        # when more trials completed, and never again once misleading (that is final)
        self._verdicts: dict[int, tuple[int, StepVerdict]] = {}

    def allows_pruning(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        return step is None or not self.judge(study, step).misleading

    def judge(self, study: optuna.Study, step: int) -> StepVerdict:
        """How well ``step`` ranks configs compared with their final values, so far."""
        known = self._verdicts.get(step)
        if known is not None and known[1].misleading:
            return known[1]
        completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if known is not None and known[0] == len(completed):
            return known[1]
        pairs = [
            (t.intermediate_values[step], t.value)
            for t in completed
            if step in t.intermediate_values
            and t.value is not None
            and math.isfinite(t.intermediate_values[step])
            and math.isfinite(t.value)
            # a trial that never went past this step says nothing about later ones
            and (t.last_step or 0) > step
        ]
        verdict = self._verdict(step, pairs)
        if verdict.misleading:
            _log.warning(
                "fidelity guard: at step %d, %d completed trials rank opposite to their final"
                " values (Spearman %.2f < %.2f): no more early stopping at step %d",
                step,
                verdict.pairs,
                verdict.correlation,
                self.options.threshold,
                step,
            )
        self._verdicts[step] = (len(completed), verdict)
        return verdict

    def _verdict(self, step: int, pairs: list[tuple[float, float]]) -> StepVerdict:
        if len(pairs) < self.options.min_pairs:
            return StepVerdict(step, len(pairs), math.nan, False)
        low, final = zip(*pairs, strict=True)
        if len(set(low)) < 2 or len(set(final)) < 2:  # no ranking to compare
            return StepVerdict(step, len(pairs), math.nan, False)
        rho = float(spearmanr(low, final).statistic)
        misleading = math.isfinite(rho) and rho < self.options.threshold
        return StepVerdict(step, len(pairs), rho, misleading)


class FidelityGuard(BasePruner):
    """Wraps ``inner``: prunes only where ``inner`` would and the step is not misleading."""

    def __init__(self, inner: BasePruner, options: GuardOptions | None = None) -> None:
        self.inner = inner
        self.judge = StepJudge(options)

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return self.inner.prune(study, trial) and self.judge.allows_pruning(study, trial)


class GuardedHyperbandPruner(optuna.pruners.HyperbandPruner):
    """Hyperband with the guard. A subclass, not a wrapper: optuna's samplers recognise a
    ``HyperbandPruner`` and model each bracket's trials apart, which a wrapper would hide."""

    def __init__(
        self,
        min_resource: int,
        max_resource: int,
        reduction_factor: int,
        options: GuardOptions | None = None,
    ) -> None:
        super().__init__(
            min_resource=min_resource, max_resource=max_resource, reduction_factor=reduction_factor
        )
        self.judge = StepJudge(options)

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return super().prune(study, trial) and self.judge.allows_pruning(study, trial)
