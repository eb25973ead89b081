"""Data-fraction fidelity (``fidelity.kind: data_fraction``): subsets, rungs, and a search
that reaches a validation score on fewer training rows than the same search without it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from kubetune.core.plan import plan_search
from kubetune.core.run_context import RunContext
from kubetune.core.schedulers import BUILDERS as SCHEDULERS
from kubetune.core.spec import ExperimentSpec, parse_spec
from kubetune.core.trial import TrialRequest
from kubetune.data.subsets import MIN_ROWS_PER_CLASS, subset_indices
from kubetune.errors import SpecError
from kubetune.steps.data_fraction import rung_budgets, subset
from kubetune.steps.retrieve import retrieve
from kubetune.steps.search import search
from kubetune.steps.train import best_budget
from kubetune.steps.trial import TRAIN_ROWS, BuiltinTrial

# --- subsets -----------------------------------------------------------------------------


def test_subsets_are_stratified_nested_and_deterministic() -> None:
    y = np.repeat([0, 1, 2], [600, 300, 100])
    small = subset_indices(y, 0.1, seed=7, stratified=True)
    large = subset_indices(y, 0.5, seed=7, stratified=True)
    assert np.bincount(y[small]).tolist() == [60, 30, 10]  # each class keeps its share
    assert np.bincount(y[large]).tolist() == [300, 150, 50]
    assert set(small) <= set(large)  # nested: a promoted trial sees the same rows again
    assert np.array_equal(small, subset_indices(y, 0.1, seed=7, stratified=True))
    assert not np.array_equal(small, subset_indices(y, 0.1, seed=8, stratified=True))
    assert len(subset_indices(y, 1.0, seed=7, stratified=True)) == len(y)


def test_a_tiny_fraction_keeps_every_class() -> None:
    y = np.repeat([0, 1], [995, 5])
    rows = subset_indices(y, 0.01, seed=0, stratified=True)
    assert np.bincount(y[rows]).tolist() == [10, MIN_ROWS_PER_CLASS]


def test_unstratified_subset_for_regression() -> None:
    y = np.linspace(0, 1, 200)
    rows = subset_indices(y, 0.25, seed=1, stratified=False)
    assert len(rows) == 50 and len(set(rows)) == 50
    with pytest.raises(ValueError, match="fraction"):
        subset_indices(y, 0.0, seed=1, stratified=False)


# --- spec --------------------------------------------------------------------------------

BASE: dict[str, Any] = {
    "name": "digits-svc",
    "objective": {"metric": "val_accuracy", "direction": "maximize"},
    "data": {"source": "sklearn:digits"},
    "trainer": {"kind": "sklearn", "estimator": "sklearn.svm.SVC"},
    "search_space": {
        "C": {"type": "float", "low": 0.01, "high": 100, "log": True},
        "gamma": {"type": "float", "low": 1e-5, "high": 1.0, "log": True},
    },
    "strategy": {"name": "random"},
    "limits": {"max_trials": 8, "parallel": 1},
    "seed": 3,
}
FRACTION = {"kind": "data_fraction", "min": 1, "max": 9, "reduction_factor": 3}


def test_spec_data_fraction_needs_no_param_and_no_budget_param() -> None:
    spec = parse_spec({**BASE, "fidelity": FRACTION})
    assert spec.fidelity is not None
    assert spec.fidelity.kind == "data_fraction" and spec.fidelity.trainer_param is None
    assert rung_budgets(spec.fidelity) == [1, 3, 9]
    assert best_budget(spec, None) is None  # the final model trains on every row
    with pytest.raises(SpecError, match=r"fidelity\.kind"):
        parse_spec({**BASE, "fidelity": {**FRACTION, "kind": "rows"}})


def test_auto_scheduler_for_data_fractions_is_asha() -> None:
    assert plan_search(parse_spec({**BASE, "fidelity": FRACTION})).scheduler == "asha"
    steps = {"param": "max_iter", "max": 9}
    assert plan_search(parse_spec({**BASE, "fidelity": steps})).scheduler == "asha"
    unguarded = {**steps, "guard": False}
    assert plan_search(parse_spec({**BASE, "fidelity": unguarded})).scheduler == "hyperband"


def test_default_kind_keeps_old_fingerprints() -> None:
    from kubetune.core.fingerprint import study_fingerprint

    old = parse_spec({**BASE, "fidelity": {"param": "max_iter", "max": 9}})
    new = parse_spec({**BASE, "fidelity": {"kind": "param", "param": "max_iter", "max": 9}})
    assert study_fingerprint(old) == study_fingerprint(new)
    fraction = parse_spec({**BASE, "fidelity": FRACTION})
    assert study_fingerprint(fraction)["fidelity"] != study_fingerprint(old)["fidelity"]


def test_subset_keeps_validation_rows() -> None:
    data = retrieve(parse_spec(BASE))
    part = subset(data, 1 / 9, seed=0)
    assert len(part.y_train) < len(data.y_train) / 8
    assert np.array_equal(part.X_val, data.X_val) and np.array_equal(part.y_val, data.y_val)


# --- a search ---------------------------------------------------------------------------

TARGET = 0.985


def _run(spec: ExperimentSpec, tmp_path: Path, name: str) -> list[FrozenTrial]:
    context = RunContext.from_spec(spec, in_memory_study=True, base_dir=tmp_path / name)
    result = search(spec, context=context)
    return sorted(result.study.get_trials(deepcopy=False), key=lambda t: t.number)


def _rows_until_target(trials: list[FrozenTrial], rows_at: dict[int, int]) -> int | None:
    """Training rows fitted, trial after trial, until one completes at >= TARGET."""
    total = 0
    for trial in trials:
        total += sum(rows_at[step] for step in trial.intermediate_values)
        if trial.state == TrialState.COMPLETE and (trial.value or 0) >= TARGET:
            return total
    return None


@pytest.mark.slow
def test_data_fraction_search_reaches_the_score_on_fewer_rows(tmp_path: Path) -> None:
    full_spec = parse_spec(BASE)
    data = retrieve(full_spec)
    n_train = len(data.y_train)
    fraction_spec = parse_spec({**BASE, "fidelity": {**FRACTION, "scheduler": "asha"}})
    rows_at = {b: len(subset(data, b / 9, seed=3).y_train) for b in (1, 3, 9)}

    fraction = _run(fraction_spec, tmp_path, "fraction")
    full = _run(full_spec, tmp_path, "full")

    # Same sampler, same seed: the same configs in the same order.
    assert [t.params for t in fraction] == [t.params for t in full]
    assert any(t.state == TrialState.PRUNED for t in fraction)
    for t in fraction:  # the record says what a trial cost
        if t.state == TrialState.COMPLETE:
            assert t.user_attrs["metrics"][TRAIN_ROWS] == sum(rows_at.values())
    # Without a fidelity every trial fits every row once.
    first = next(i for i, t in enumerate(full) if (t.value or 0) >= TARGET)
    full_rows = n_train * (first + 1)
    fraction_rows = _rows_until_target(fraction, rows_at)
    assert fraction_rows is not None, "the data-fraction search never reached the target"
    assert fraction_rows < full_rows, (fraction_rows, full_rows)


# --- every scheduler, in process ---------------------------------------------------------


class _StudyReporter:
    """Reports to a live optuna trial and prunes as the study's pruner says (the loop's job)."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial

    def report(self, step: int, value: float) -> None:
        self.trial.report(value, step)
        if self.trial.should_prune():
            raise optuna.TrialPruned()


@pytest.mark.parametrize("scheduler", sorted(SCHEDULERS))
def test_every_scheduler_prunes_on_data_fractions(scheduler: str) -> None:
    spec = parse_spec(
        {
            **BASE,
            "data": {"source": "sklearn:wine"},  # small: six trials per scheduler stay quick
            "trainer": {"kind": "sklearn", "estimator": "sklearn.neighbors.KNeighborsClassifier"},
            "search_space": {"n_neighbors": {"type": "int", "low": 1, "high": 40}},
            "fidelity": {**FRACTION, "scheduler": scheduler},
        }
    )
    plan = plan_search(spec)
    study = optuna.create_study(direction="maximize", sampler=plan.sampler, pruner=plan.pruner)
    trial_fn = BuiltinTrial.from_spec(spec)
    for number in range(6):
        trial = study.ask()
        params = {"n_neighbors": trial.suggest_int("n_neighbors", 1, 40)}
        request = TrialRequest(study="s", number=number, params=params, budget=9, seed=number)
        try:
            metrics = trial_fn(request, _StudyReporter(trial))
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
            continue
        study.tell(trial, metrics["val_accuracy"])
    smallest = len(subset(trial_fn.load()[1], 1 / 9, seed=spec.seed).y_train)
    assert any(t.params["n_neighbors"] > smallest for t in study.trials)
    for t in study.trials:
        assert t.intermediate_values and set(t.intermediate_values) <= {1, 3, 9}  # rungs only
        if t.params["n_neighbors"] > smallest:  # more neighbours than 1/9 of the rows has
            assert 1 not in t.intermediate_values  # judged at the next rung, not failed
    if scheduler == "none":
        assert all(t.state == TrialState.COMPLETE for t in study.trials)
