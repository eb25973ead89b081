"""Custom trainers that save and load checkpoints: the ``resume_from`` hook, used by pbt
and evolution's weight inheritance. The trainer is ``examples/custom_trainer.py``."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import kubetune
from kubetune.core.attrs import METRICS, PARENT, PBT
from kubetune.core.run_context import RunContext
from kubetune.core.spec import parse_spec
from kubetune.errors import SpecError
from kubetune.steps.retrieve import retrieve
from kubetune.steps.search import search
from kubetune.steps.trial import INHERITED_FROM, check_trainer
from kubetune.trainers.custom import CustomTrainer
from test_examples import EXAMPLES, Recorder

NO_HOOK = """\
import numpy as np

class Majority:
    def predict(self, X):
        return np.zeros(len(X), dtype=int)

def train(params, data, budget, reporter, seed, final):
    return Majority()
"""


@pytest.fixture
def custom_trainer_on_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``examples`` on the path of this process and of the workers it starts (which must
    also import this checkout's kubetune)."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    src = str(Path(kubetune.__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(EXAMPLES), src]))
    monkeypatch.delitem(sys.modules, "custom_trainer", raising=False)
    yield
    sys.modules.pop("custom_trainer", None)


def spec(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "custom-pbt",
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "data": {"source": "sklearn:digits"},
        "trainer": {"kind": "custom", "function": "custom_trainer:train"},
        "search_space": {"lr": {"type": "float", "low": 1e-3, "high": 0.3, "log": True}},
        "strategy": {"name": "pbt", "population_size": 2, "quantile": 0.5},
        "limits": {"max_trials": 4, "parallel": 1},
        "seed": 0,
        **overrides,
    }


def test_fit_from_hands_the_parent_folder_to_resume_from(
    custom_trainer_on_path: None,
    tmp_path: Path,
) -> None:
    data = retrieve(parse_spec(spec()))
    trainer = CustomTrainer({"function": "custom_trainer:train"})
    trainer.check(fidelity_param=None, base_dir=EXAMPLES)
    assert trainer.can_resume
    fit: dict[str, Any] = {"budget": 1, "seed": 0, "metric": "accuracy"}
    parent = trainer.fit({"lr": 0.3}, data, reporter=Recorder(), **{**fit, "budget": 10})
    parent.save(tmp_path / "parent")
    parent_score = float((parent.predict(data.X_val) == data.y_val).mean())
    assert parent_score > 0.9
    # lr so small that one epoch barely moves the weights: where it starts is what it scores
    cold, warm = Recorder(), Recorder()
    trainer.fit({"lr": 1e-6}, data, reporter=cold, **fit)
    trainer.fit_from(tmp_path / "parent", {"lr": 1e-6}, data, reporter=warm, **fit)
    assert warm.reports[0][1] == pytest.approx(parent_score, abs=0.02)
    assert cold.reports[0][1] < 0.5


@pytest.mark.slow  # about 6 s on a loaded 2-core machine (worker start-up)
def test_pbt_with_a_custom_trainer_goes_on_from_checkpoints(
    custom_trainer_on_path: None,
    tmp_path: Path,
) -> None:
    parsed = parse_spec(spec(), base_dir=EXAMPLES)
    context = RunContext.from_spec(parsed, in_memory_study=True, base_dir=tmp_path)
    result = search(parsed, context=context)
    trials = sorted(result.study.trials, key=lambda t: t.number)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4, [
        t.user_attrs.get("message") for t in trials
    ]
    assert any(t.user_attrs[PBT]["exploited"] is not None for t in trials[2:])
    for t in trials[2:]:  # loaded from the artifact store and handed to resume_from
        assert t.user_attrs[METRICS][INHERITED_FROM] == t.user_attrs[PARENT]


def test_a_custom_function_without_the_hook_is_refused_for_pbt_and_inherit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "no_hook.py").write_text(NO_HOOK)
    monkeypatch.syspath_prepend(str(tmp_path))
    raw = spec(trainer={"kind": "custom", "function": "no_hook:train"})
    parsed = parse_spec(raw, base_dir=tmp_path)
    with pytest.raises(SpecError, match="custom function with a resume_from parameter"):
        check_trainer(parsed, retrieve(parsed))
    raw = spec(
        trainer={"kind": "custom", "function": "no_hook:train", "inherit": True},
        strategy={"name": "evolution", "population_size": 2, "sample_size": 1},
    )
    parsed = parse_spec(raw, base_dir=tmp_path)
    with pytest.raises(SpecError, match=r"trainer\.inherit: no_hook:train has no resume_from"):
        check_trainer(parsed, retrieve(parsed))
