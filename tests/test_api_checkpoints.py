"""The Python API's checkpoints: ``kubetune.tune`` objectives that go on from their parent.

A toy "training" whose progress is a number kept in the trial's checkpoint folder: each
trial adds its ``lr`` to what it starts from, so a trial that really read its parent's
checkpoint scores exactly the parent's value plus its own ``lr``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cloudpickle
import pytest

import kubetune
from kubetune.api import TrialContext
from kubetune.core.attrs import PARENT
from kubetune.errors import SpecError

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # objectives run in workers

SPACE = {"lr": {"type": "float", "low": 0.1, "high": 1.0}}


def accumulate(params: dict, ctx: TrialContext) -> float:
    start = 0.0
    if ctx.parent is not None:
        start = float((ctx.checkpoint_dir(ctx.parent) / "progress.txt").read_text())
    progress = start + params["lr"]
    (ctx.checkpoint_dir() / "progress.txt").write_text(repr(progress))
    return progress


@pytest.mark.parametrize("strategy", ["pbt", "evolution"])
def test_trials_go_on_from_their_parents_checkpoint(strategy: str, tmp_path: Path) -> None:
    options = {"population_size": 4}
    if strategy == "evolution":
        options["sample_size"] = 2
    result = kubetune.tune(
        accumulate,
        SPACE,
        strategy=strategy,
        strategy_options=options,
        direction="maximize",
        max_trials=12,
        seed=0,
        checkpoint_dir=tmp_path / "cp",
    )
    trials = {t.number: t for t in result.study.trials}
    children = [t for t in trials.values() if t.user_attrs.get(PARENT) is not None]
    assert children, "no trial named a parent"
    for child in children:
        parent = trials[child.user_attrs[PARENT]]
        assert child.value == pytest.approx(parent.value + child.params["lr"])
    # progress carried over: the best beats anything one trial from scratch can reach
    assert result.best_value > SPACE["lr"]["high"]
    assert (tmp_path / "cp" / f"{result.best_trial_number:06d}" / "progress.txt").is_file()


def test_without_a_folder_the_context_says_how_to_get_one() -> None:
    ctx = TrialContext(3, 0, None, reporter=None)  # type: ignore[arg-type]
    with pytest.raises(SpecError, match=r"checkpoint_dir"):
        ctx.checkpoint_dir()
