"""Warm start of a re-tuning study from earlier studies of the same experiment (or from
configs the caller found in the model repository), in the core search. Trials run on the
scripted in-process FakeExecutor, whose submitted requests show what ran first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from kubetune.core.attrs import WARM_START
from kubetune.core.run_context import RunContext
from kubetune.core.search import TuneResult, run_search
from kubetune.core.spec import ExperimentSpec, parse_spec
from kubetune.core.warm_start import Candidate, fit_to_space, study_family
from kubetune.testing.fake_executor import FakeExecutor, TrialScript


def _spec(tmp_path: Path, **changes: Any) -> ExperimentSpec:
    data: dict[str, Any] = {
        "name": "exp",
        "objective": {"metric": "value", "direction": "maximize"},
        "search_space": {
            "x": {"type": "float", "low": 0.0, "high": 1.0},
            "kind": ["a", "b"],
        },
        "strategy": {"name": "random"},
        "limits": {"max_trials": 6},
        "storage": str(tmp_path / "study.journal"),
    }
    data.update(changes)
    return parse_spec(data)


def _score(params: dict[str, Any]) -> float:
    # the best configs are near x = 0.3 with kind "b"
    return -abs(float(params["x"]) - 0.3) + (0.5 if params["kind"] == "b" else 0.0)


def _search(
    spec: ExperimentSpec, tmp_path: Path, study: str, executor: FakeExecutor, **kw: Any
) -> TuneResult:
    context = RunContext.from_spec(spec, base_dir=tmp_path).for_study(study)
    return run_search(spec, executor, context=context, **kw)


def _executor() -> FakeExecutor:
    return FakeExecutor(lambda r: TrialScript(value=_score(r.params)), capacity=1)


def _top(study: optuna.Study, k: int) -> list[dict[str, Any]]:
    done = [t for t in study.get_trials() if t.value is not None]
    return [t.params for t in sorted(done, key=lambda t: -float(t.value or 0))[:k]]


def test_a_new_study_runs_the_best_configs_of_the_earlier_ones_first(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    first = _search(spec, tmp_path, study_family("exp", "a" * 64), _executor())
    expected = _top(first.study, 3)

    executor = _executor()
    second = _search(spec, tmp_path, study_family("exp", "b" * 64), executor, warm_start=3)
    assert second.warm_started == 3
    assert [r.params for r in executor.submitted[:3]] == expected
    trials = second.study.get_trials()
    sources = [t.user_attrs.get(WARM_START) for t in trials]
    assert all(s and s.startswith("exp.aaaaaaaaaaaa#") for s in sources[:3])
    assert sources[3:] == [None] * 3  # then the sampler goes on as usual
    assert len(trials) == 6  # warm-started trials count toward max_trials

    # Resuming that study does not queue them again.
    more = _spec(tmp_path, limits={"max_trials": 8})
    again = _search(more, tmp_path, study_family("exp", "b" * 64), _executor(), warm_start=3)
    assert again.warm_started == 0
    assert sum(WARM_START in t.user_attrs for t in again.study.get_trials()) == 3


def test_other_experiments_and_objectives_are_not_learned_from(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    _search(_spec(tmp_path, name="exp-2"), tmp_path, "exp-2", _executor())  # prefix "exp"
    other_direction = _spec(tmp_path, objective={"metric": "value", "direction": "minimize"})
    _search(other_direction, tmp_path, "exp.minimized", _executor())
    fallback = [Candidate({"x": 0.25, "kind": "b"}, 1.0, "exp v1")]
    executor = _executor()
    result = _search(
        spec, tmp_path, "exp.new", executor, warm_start=3, warm_start_fallback=fallback
    )
    # Nothing comparable in the storage: the caller's candidates (the repository's) are used.
    assert result.warm_started == 1
    assert executor.submitted[0].params == {"x": 0.25, "kind": "b"}
    assert result.study.get_trials()[0].user_attrs[WARM_START] == "exp v1"


def test_a_grid_search_is_not_warm_started(tmp_path: Path) -> None:
    spec = _spec(
        tmp_path,
        search_space={"x": [0.1, 0.3, 0.5], "kind": ["a", "b"]},
        strategy={"name": "grid"},
    )
    fallback = [Candidate({"x": 0.3, "kind": "b"}, 1.0, "exp v1")]
    result = _search(
        spec, tmp_path, "exp.grid", _executor(), warm_start=3, warm_start_fallback=fallback
    )
    assert result.warm_started == 0  # a finite grid visits every config anyway
    assert len(result.study.get_trials()) == 6


def test_only_configs_valid_in_the_current_space_are_kept(tmp_path: Path) -> None:
    space = _spec(
        tmp_path,
        search_space={
            "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
            "n_layers": {"type": "int", "low": 1, "high": 3},
            "units": {"type": "int", "low": 8, "high": 64, "per_layer": "n_layers"},
            "act": ["relu", "tanh"],
            "momentum": {"type": "float", "low": 0.0, "high": 0.99, "when": {"act": "tanh"}},
        },
    ).space
    candidates = [
        # structured, as a manifest records it: one list entry per layer
        Candidate({"lr": 0.01, "n_layers": 2, "units": [16, 32], "act": "relu"}, 0.9, "v5"),
        Candidate({"lr": 0.5, "n_layers": 1, "units": [16], "act": "relu"}, 0.8, "v4"),  # lr
        Candidate({"lr": 0.01, "n_layers": 1, "units": [16], "act": "gelu"}, 0.8, "v3"),  # act
        Candidate(
            {"lr": 0.01, "n_layers": 1, "units": [16], "act": "tanh"}, 0.8, "v2"
        ),  # no momentum
        # flat, as a study records it; an extra param of an older space is dropped
        Candidate(
            {"lr": 0.02, "n_layers": 1, "units_0": 8, "act": "tanh", "momentum": 0.5, "old": 1},
            0.7,
            "s#3",
        ),
        Candidate({"lr": 0.01, "n_layers": 2, "units": [16, 32], "act": "relu"}, 0.6, "v1"),  # dup
        Candidate({"lr": 0.03, "n_layers": 1, "units": [9], "act": "relu"}, 0.5, "v0"),
    ]
    kept = fit_to_space(space, candidates, limit=10)
    assert kept == [
        ({"lr": 0.01, "n_layers": 2, "units_0": 16, "units_1": 32, "act": "relu"}, "v5"),
        ({"lr": 0.02, "n_layers": 1, "units_0": 8, "act": "tanh", "momentum": 0.5}, "s#3"),
        ({"lr": 0.03, "n_layers": 1, "units_0": 9, "act": "relu"}, "v0"),
    ]
    assert [source for _, source in fit_to_space(space, candidates, limit=2)] == ["v5", "s#3"]


@pytest.mark.parametrize("value", [-1, 101])
def test_the_retune_section_is_validated(tmp_path: Path, value: int) -> None:
    from kubetune.errors import SpecError

    with pytest.raises(SpecError, match=r"retune\.warm_start"):
        _spec(tmp_path, retune={"warm_start": value})
