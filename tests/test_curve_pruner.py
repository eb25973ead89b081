"""Learning-curve extrapolation (``fidelity.scheduler: curve``): the fit and the pruner.

The curves are synthetic (known shapes plus noise, fixed seeds), so each test knows every
trial's true final value and can check what the pruner stopped against it.
"""

from __future__ import annotations

import functools
import html
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

import kubetune
from kubetune.core.attrs import CURVE_PREDICTION
from kubetune.core.curve_pruner import CurveOptions, CurvePruner
from kubetune.core.curves import FAMILIES, extrapolate
from kubetune.core.strategies.factory import BUILDERS as STRATEGY_BUILDERS
from kubetune.report.html import curve_reason, write_html_report

# Objectives travel to the worker processes by value (no import of this module there).
cloudpickle.register_pickle_by_value(sys.modules[__name__])

MAX_STEP = 20
Curve = Callable[[np.ndarray], np.ndarray]


def _shape(kind: str, start: float, final: float, rate: float) -> Curve:
    """A loss curve from ``start`` (step 0) to exactly ``final`` at MAX_STEP."""

    def pow_(t: np.ndarray) -> np.ndarray:
        g = (1 + t) ** -rate
        return final + (start - final) * (g - (1 + MAX_STEP) ** -rate) / (
            1 - (1 + MAX_STEP) ** -rate
        )

    def exp_(t: np.ndarray) -> np.ndarray:
        g = np.exp(-rate * t / MAX_STEP * 8)
        return final + (start - final) * (g - math.exp(-rate * 8)) / (1 - math.exp(-rate * 8))

    def lin(t: np.ndarray) -> np.ndarray:  # the slow starter: no saturation at all
        return start + (final - start) * t / MAX_STEP

    return {"pow": pow_, "exp": exp_, "lin": lin}[kind]


def synthetic_curves(seed: int, n: int = 16) -> list[np.ndarray]:
    """``n`` noisy loss curves (steps 1..MAX_STEP) of mixed shapes; the last is a slow
    starter that begins worst and ends best."""
    rng = np.random.default_rng(seed)
    steps = np.arange(1, MAX_STEP + 1, dtype=float)
    curves = []
    for _ in range(n - 1):
        final = rng.uniform(0.15, 1.0)
        start = final + rng.uniform(0.3, 1.0)
        kind = str(rng.choice(["pow", "exp", "lin"]))
        rate = rng.uniform(0.3, 1.2)
        curve = _shape(kind, start, final, rate)(steps)
        curves.append(curve + rng.normal(0, 0.01, MAX_STEP))
    slow = _shape("lin", 2.2, 0.1, 1.0)(steps) + rng.normal(0, 0.01, MAX_STEP)
    order = rng.permutation(n)
    everything = [*curves, slow]
    return [everything[i] for i in order]


@functools.cache
def run_seed(
    seed: int, direction: str = "minimize", options: CurveOptions | None = None
) -> tuple[optuna.Study, dict[int, int]]:
    """``run_curves`` on ``synthetic_curves(seed)``, once per module (several tests read it)."""
    return run_curves(synthetic_curves(seed), direction=direction, options=options)


def run_curves(
    curves: list[np.ndarray], *, direction: str, options: CurveOptions | None = None
) -> tuple[optuna.Study, dict[int, int]]:
    """Report each curve, step by step, as a trial of a study pruned by CurvePruner.

    Returns the study and, for each pruned trial number, the step it was stopped at.
    """
    sign = 1.0 if direction == "minimize" else -1.0
    study = optuna.create_study(
        direction=direction,
        pruner=CurvePruner(MAX_STEP, options),
        sampler=optuna.samplers.RandomSampler(0),
    )
    stopped: dict[int, int] = {}
    for curve in curves:
        trial = study.ask()
        for step, value in enumerate(sign * curve, start=1):
            trial.report(float(value), step)
            if step < MAX_STEP and trial.should_prune():
                stopped[trial.number] = step
                study.tell(trial, state=TrialState.PRUNED)
                break
        else:
            study.tell(trial, float(sign * curve[-1]))
    return study, stopped


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stops_hopeless_curves_early_and_never_the_eventual_best(direction: str, seed: int) -> None:
    curves = synthetic_curves(seed)
    finals = [float(c[-1]) for c in curves]
    _, stopped = run_seed(seed, direction)
    best = int(np.argmin(finals))  # lower loss is better; maximize sees the negated curve
    assert best not in stopped, (
        f"the eventual best (trial {best}) was stopped at {stopped.get(best)}"
    )
    # Never stopped: a trial that would have beaten the best completed before it.
    for number, step in stopped.items():
        earlier = [finals[i] for i in range(number) if i not in stopped]
        assert finals[number] > min(earlier), (number, step)
    # Hopeless: ends far (0.3+) behind the best value already known when it started.
    hopeless = [
        i
        for i in range(len(curves))
        if i >= 3 and finals[i] > min(finals[j] for j in range(i) if j not in stopped) + 0.3
    ]
    assert hopeless, "the curve set must contain hopeless trials"
    early = [i for i in hopeless if i in stopped and stopped[i] <= MAX_STEP // 2]
    assert len(early) >= 0.8 * len(hopeless), (hopeless, stopped)


def test_records_the_prediction_on_the_trial() -> None:
    study, stopped = run_seed(0)
    assert stopped
    number, step = next(iter(stopped.items()))
    record = study.trials[number].user_attrs[CURVE_PREDICTION]
    assert record["pruned"] is True and record["step"] == step and record["at"] == MAX_STEP
    assert record["p_better"] < 0.05
    assert record["predicted"] > record["reference"]
    assert set(record["families"]) <= {f.name for f in FAMILIES}


@pytest.mark.parametrize("min_points", [3, 8])
def test_never_prunes_before_min_points(min_points: int) -> None:
    _, stopped = run_seed(1, "minimize", CurveOptions(min_points=min_points))
    assert stopped
    assert min(stopped.values()) >= min_points
    assert min_points == 3 or min(stopped.values()) == min_points  # it does act at once


def test_k_th_best_reference_prunes_less() -> None:
    _, against_best = run_seed(2)
    _, against_third = run_seed(2, "minimize", CurveOptions(k=3))
    assert set(against_third) < set(against_best) or len(against_third) < len(against_best)


def test_no_reference_no_pruning() -> None:
    # The first trial has nothing to beat: however bad its curve, it runs to the end.
    study, stopped = run_curves([np.linspace(5, 4, MAX_STEP)], direction="minimize")
    assert not stopped and study.trials[0].state == TrialState.COMPLETE


def test_lower_threshold_prunes_later_or_less() -> None:
    _, strict = run_seed(0, "minimize", CurveOptions(threshold=0.001))
    _, loose = run_seed(0, "minimize", CurveOptions(threshold=0.2))
    assert sum(strict.values()) / max(len(strict), 1) >= sum(loose.values()) / len(loose)
    assert len(strict) <= len(loose)


@pytest.mark.parametrize("kind", ["pow", "exp", "lin"])
def test_extrapolation_is_never_confidently_pessimistic(kind: str) -> None:
    # Pessimism is what would stop a good trial: the true final value may lie below the
    # prediction (loss view) by at most three standard deviations. Optimism only delays a
    # stop; it is bounded by the hopeless-curve test above and loosely here.
    rng = np.random.default_rng(3)
    steps = np.arange(1, MAX_STEP + 1, dtype=float)
    curve = _shape(kind, 1.5, 0.4, 0.7)(steps) + rng.normal(0, 0.01, MAX_STEP)
    for seen in (6, 12):
        for minimize, sign in ((True, 1.0), (False, -1.0)):
            pred = extrapolate(steps[:seen], sign * curve[:seen], at=MAX_STEP, minimize=minimize)
            assert pred is not None
            loss_view_mean = sign * pred.mean
            assert loss_view_mean - 0.4 <= 3 * pred.std + 0.02, (seen, pred)
            assert abs(loss_view_mean - 0.4) < 0.5, (seen, pred)


def test_extrapolation_survives_degenerate_curves() -> None:
    steps = np.arange(1, 11, dtype=float)
    flat = extrapolate(steps, np.full(10, 0.5), at=30, minimize=True)
    assert flat is not None and abs(flat.mean - 0.5) < 1e-6
    assert extrapolate([1.0], [0.3], at=30, minimize=True) is None
    rising = extrapolate(steps, steps * 0.1, at=30, minimize=True)  # getting worse
    assert rising is not None and math.isfinite(rising.mean) and math.isfinite(rising.std)
    wild = extrapolate(
        steps, np.array([1, 1e9, -1e9, 5, np.nan, 3, 2, 1e12, 0, 1.0]), at=30, minimize=True
    )
    assert wild is None or (math.isfinite(wild.mean) and math.isfinite(wild.std))


def test_options_are_checked_for_direct_use() -> None:
    with pytest.raises(ValueError, match=r"curve\.min_points"):
        CurveOptions(min_points=1)
    with pytest.raises(ValueError, match=r"curve\.threshold"):
        CurveOptions(threshold=0.9)
    with pytest.raises(ValueError, match=r"curve\.k"):
        CurveOptions(k=0)


# --- through kubetune.tune: every strategy, both directions -------------------------------

TUNE_STEPS = 12


def curve_objective(params: dict[str, Any], ctx: Any) -> float:
    """A loss curve whose final value is ``(x - 0.3)^2 + 0.1``; reports every step."""
    final = (params["x"] - 0.3) ** 2 + 0.1
    value = final
    for step in range(1, ctx.budget + 1):
        value = final + 0.8 * (step**-0.7 - ctx.budget**-0.7)
        ctx.report(step, value)
    return value


def curve_objective_max(params: dict[str, Any], ctx: Any) -> float:
    return -curve_objective(params, _Negated(ctx))


class _Negated:
    def __init__(self, ctx: Any) -> None:
        self.budget = ctx.budget
        self._ctx = ctx

    def report(self, step: int, value: float) -> None:
        self._ctx.report(step, -value)


# darts is left out: it trains one supernet instead of trials (nothing for a scheduler to
# stop) and works on the torch trainers' spaces only, not on a Python objective.
@pytest.mark.parametrize("strategy", sorted(set(STRATEGY_BUILDERS) - {"darts"}))
def test_curve_scheduler_works_with_every_strategy(strategy: str) -> None:
    result = kubetune.tune(
        curve_objective,
        {"x": {"type": "float", "low": 0, "high": 1}},
        strategy=strategy,
        fidelity={"param": "epochs", "max": TUNE_STEPS, "scheduler": "curve"},
        max_trials=10,
        seed=1,
    )
    check_curve_run(result, minimize=True)


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_curve_scheduler_through_tune_both_directions(direction: str) -> None:
    result = kubetune.tune(
        curve_objective if direction == "minimize" else curve_objective_max,
        {"x": {"type": "float", "low": 0, "high": 1}},
        strategy="random",
        direction=direction,  # type: ignore[arg-type]
        fidelity={
            "param": "epochs",
            "max": TUNE_STEPS,
            "scheduler": "curve",
            "curve": {"min_points": 3},
        },
        max_trials=10,
        seed=2,
    )
    check_curve_run(result, minimize=direction == "minimize")


def check_curve_run(result: Any, *, minimize: bool) -> None:
    assert result.scheduler == "curve"
    assert isinstance(result.study.pruner, CurvePruner)
    trials = result.study.trials
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned, "a clearly worse config was never stopped"
    for t in pruned:
        record = t.user_attrs[CURVE_PREDICTION]
        assert record["pruned"] and record["step"] == t.last_step < TUNE_STEPS
        # It would indeed have ended worse than the best trial finished before it.
        x = t.params["x"]
        final = (x - 0.3) ** 2 + 0.1
        done = [u.value for u in trials if u.state == TrialState.COMPLETE and u.number < t.number]
        assert done and final > (min(done) if minimize else -max(done))
    best = result.best_trial
    assert best is not None and best.state == TrialState.COMPLETE


def test_the_html_report_says_what_the_curve_predicted(tmp_path: Path) -> None:
    study, stopped = run_seed(0)
    number = next(iter(stopped))
    record = study.trials[number].user_attrs[CURVE_PREDICTION]
    text = write_html_report(study, tmp_path / "r.html", title="t", metric="loss").read_text()
    line = curve_reason(record)
    assert line.startswith("curve: predicted ") and f"at step {MAX_STEP}" in line
    assert html.escape(line) in text
