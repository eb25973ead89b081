"""The synchronous successive-halving / Hyperband schedule of the looping pipeline."""

from __future__ import annotations

from typing import Any

import pytest

from kubetune.core.spec import parse_spec
from kubetune.core.sync_schedule import max_rounds, schedule_for
from kubetune.errors import SpecError


def _spec(fidelity: dict[str, Any] | None, **limits: Any) -> Any:
    data: dict[str, Any] = {
        "name": "s",
        "objective": {"metric": "val_accuracy"},
        "search_space": {"lr": {"type": "float", "low": 0.01, "high": 1.0}},
        "limits": {"max_trials": 9, "parallel": 3, **limits},
    }
    if fidelity is not None:
        data["fidelity"] = fidelity
    return parse_spec(data)


def test_hyperband_brackets_start_at_ever_larger_budgets() -> None:
    schedule = schedule_for(_spec({"param": "epochs", "min": 1, "max": 27}))
    assert schedule.brackets == ((1, 3, 9, 27), (3, 9, 27), (9, 27), (27,))
    assert schedule.bracket(4) == (1, 3, 9, 27)  # cycles
    assert schedule.survivors(9) == 3 and schedule.survivors(2) == 1 and schedule.survivors(0) == 0


def test_asha_is_one_successive_halving_bracket_and_tops_up_to_the_maximum() -> None:
    schedule = schedule_for(
        _spec({"param": "epochs", "min": 2, "max": 20, "reduction_factor": 3, "scheduler": "asha"})
    )
    assert schedule.brackets == ((2, 6, 18, 20),)


def test_without_a_fidelity_a_bracket_is_one_round_at_the_trainers_budget() -> None:
    assert schedule_for(_spec(None)).brackets == ((None,),)
    none = schedule_for(_spec({"param": "epochs", "max": 8, "scheduler": "none"}))
    assert none.brackets == ((8,),)


def test_median_pruning_needs_the_controller_form() -> None:
    with pytest.raises(SpecError, match=r"fidelity.scheduler: 'median'.*controller form"):
        schedule_for(_spec({"param": "epochs", "max": 8, "scheduler": "median"}))


def test_rounds_cover_max_trials_bracket_by_bracket() -> None:
    # 9 configs, 3 per bracket: brackets (1,3,9,27), (3,9,27), (9,27) -> 4 + 3 + 2 rounds
    assert max_rounds(_spec({"param": "epochs", "min": 1, "max": 27})) == 9
    assert max_rounds(_spec(None)) == 3
    assert max_rounds(_spec(None, max_trials=10)) == 4  # the last bracket holds one config
    assert max_rounds(_spec(None), width=9) == 1


def test_rounds_need_max_trials() -> None:
    with pytest.raises(SpecError, match=r"limits.max_trials: the looping pipeline"):
        max_rounds(_spec(None, max_trials=None, timeout="1h"))
