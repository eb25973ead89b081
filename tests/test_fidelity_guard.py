"""The fidelity guard: early stopping stops at a step whose ranking is opposite to the final
one, and only there (core/fidelity_guard.py)."""

from __future__ import annotations

import math

import optuna
import pytest

import kubetune
from kubetune.core.fidelity_guard import (
    FidelityGuard,
    GuardedHyperbandPruner,
    GuardOptions,
    StepJudge,
)

MAX = 9
SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}


def _curve(x: float, step: int, misleading: bool) -> float:
    """Loss at ``step``: the final loss is x; early steps rank configs as the final one does,
    or (misleading) the other way round up to step 3."""
    if misleading and step <= 3:
        return 1.0 - x
    return x + (MAX - step) * 0.01


def _study_with_completed(values: list[tuple[float, float]], step: int = 1) -> optuna.Study:
    """A study whose completed trials reported ``low`` at ``step`` and ended at ``final``."""
    study = optuna.create_study()
    for low, final in values:
        trial = study.ask()
        trial.report(low, step)
        trial.report(final, MAX)
        study.tell(trial, final)
    return study


def test_a_step_that_ranks_opposite_to_the_final_values_is_misleading() -> None:
    study = _study_with_completed([(1.0 - v, v) for v in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)])
    verdict = StepJudge().judge(study, 1)
    assert verdict.pairs == 6
    assert verdict.correlation == pytest.approx(-1.0)
    assert verdict.misleading


def test_a_step_that_ranks_like_the_final_values_is_not() -> None:
    study = _study_with_completed([(v + 0.05, v) for v in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)])
    verdict = StepJudge().judge(study, 1)
    assert verdict.correlation == pytest.approx(1.0)
    assert not verdict.misleading


def test_no_verdict_before_enough_trials_ran_to_the_end() -> None:
    study = _study_with_completed([(1.0 - v, v) for v in (0.1, 0.2, 0.3, 0.4, 0.5)])
    verdict = StepJudge(GuardOptions(min_pairs=6)).judge(study, 1)
    assert verdict.pairs == 5
    assert math.isnan(verdict.correlation)
    assert not verdict.misleading


def test_the_guard_never_prunes_what_the_scheduler_keeps() -> None:
    class Never(optuna.pruners.BasePruner):
        def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
            return False

    study = _study_with_completed([(v, v) for v in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)])
    trial = study.ask()
    trial.report(0.9, 1)
    frozen = study._storage.get_trial(trial._trial_id)
    assert not FidelityGuard(Never()).prune(study, frozen)
    assert FidelityGuard(optuna.pruners.ThresholdPruner(upper=0.5)).prune(study, frozen)


def test_the_guard_lets_trials_through_a_misleading_step_only() -> None:
    study = _study_with_completed([(1.0 - v, v) for v in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)])
    always = optuna.pruners.ThresholdPruner(upper=-1.0)  # prunes every reported value
    guard = FidelityGuard(always)
    at_misleading = study.ask()
    at_misleading.report(0.9, 1)
    assert not guard.prune(study, study._storage.get_trial(at_misleading._trial_id))
    at_other = study.ask()
    at_other.report(0.9, 5)  # no trial reported at step 5: nothing to judge, the rule stands
    assert guard.prune(study, study._storage.get_trial(at_other._trial_id))


def test_guarded_hyperband_is_still_a_hyperband_pruner_for_optunas_samplers() -> None:
    # optuna's samplers model each Hyperband bracket apart when the pruner is one
    pruner = GuardedHyperbandPruner(1, MAX, 3)
    assert isinstance(pruner, optuna.pruners.HyperbandPruner)


def _objective(misleading: bool):  # type: ignore[no-untyped-def]
    def objective(params: dict[str, float], ctx: kubetune.TrialContext) -> float:
        x = params["x"]
        for step in range(1, MAX + 1):
            ctx.report(step, _curve(x, step, misleading))
        return x

    return objective


def _search(misleading: bool, guard: bool) -> optuna.Study:
    return kubetune.tune(
        _objective(misleading),
        SPACE,
        strategy="random",
        direction="minimize",
        max_trials=60,
        fidelity={"param": "epochs", "min": 1, "max": MAX, "scheduler": "asha", "guard": guard},
        seed=3,
    ).study


def _best(study: optuna.Study) -> float:
    return min(t.value for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE)


@pytest.mark.slow
def test_a_search_with_a_misleading_fidelity_ends_better_with_the_guard() -> None:
    # ASHA keeps the configs that look best at steps 1 and 3, which are the worst at the end;
    # the guard finds that out from the trials that ran to the end and stops cutting there.
    unguarded, guarded = _search(True, guard=False), _search(True, guard=True)
    assert _best(guarded) < _best(unguarded)
    assert _best(guarded) < 0.1
    pruned = [t for t in guarded.trials if t.state == optuna.trial.TrialState.PRUNED]
    late = guarded.trials[len(guarded.trials) // 2 :]
    # after the verdict, no trial is cut at the misleading steps any more
    assert not [t for t in late if t.state == optuna.trial.TrialState.PRUNED and t.last_step <= 3]
    assert pruned  # it did cut early on, before it knew


@pytest.mark.slow
def test_the_guard_leaves_a_well_ranked_fidelity_alone() -> None:
    unguarded, guarded = _search(False, guard=False), _search(False, guard=True)
    assert [t.state for t in guarded.trials] == [t.state for t in unguarded.trials]
