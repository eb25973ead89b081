"""Weight inheritance for torch-mlp: a child starts from its parent's checkpoint.

Digits (bundled with scikit-learn), fixed seeds, CPU.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from kubetune.core.attrs import METRICS, PARENT
from kubetune.core.run_context import RunContext
from kubetune.core.spec import parse_spec
from kubetune.core.trial import TrialRequest
from kubetune.steps.retrieve import retrieve
from kubetune.steps.search import search
from kubetune.steps.trial import INHERITED_FROM
from kubetune.storage import open_store
from kubetune.trainers.checkpoints import LocalCheckpoints, checkpoints_for
from kubetune.trainers.torch_mlp import TorchMLPTrainer

cloudpickle.register_pickle_by_value(sys.modules[__name__])

DIGITS = {
    "name": "digits-inherit",
    "objective": {"metric": "val_accuracy", "direction": "maximize"},
    "data": {"source": "sklearn:digits"},
}


class Curve:
    def __init__(self) -> None:
        self.values: list[float] = []

    def report(self, step: int, value: float) -> None:
        self.values.append(value)


@pytest.fixture(scope="module")
def parent_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A torch-mlp (one hidden layer of 32) trained for 8 epochs, saved as trial 0."""
    data = retrieve(parse_spec({**DIGITS, "search_space": {"lr": 0.003}}))
    trainer = TorchMLPTrainer({"inherit": True})
    model = trainer.fit(
        {"n_layers": 1, "units": 32, "lr": 3e-3},
        data,
        budget=8,
        seed=0,
        reporter=Curve(),
        metric="accuracy",
    )
    store = LocalCheckpoints(tmp_path_factory.mktemp("checkpoints"))
    store.save(0, model)
    folder = store.local_dir(0)
    assert folder is not None
    return folder


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "child",
    [
        {"n_layers": 1, "units": 48},  # widened
        {"n_layers": 2, "units": [32, 32]},  # deepened
        {"n_layers": 2, "units": [40, 24]},  # deepened, widened and narrowed
    ],
)
def test_inherited_child_beats_a_cold_start_after_one_epoch(
    parent_dir: Path, child: dict[str, Any], seed: int
) -> None:
    data = retrieve(parse_spec({**DIGITS, "search_space": {"lr": 0.003}}))
    trainer = TorchMLPTrainer({"inherit": True})
    params = {**child, "lr": 1e-3}
    cold, warm = Curve(), Curve()
    fit = {"data": data, "budget": 1, "seed": seed, "metric": "accuracy"}
    trainer.fit(params, reporter=cold, **fit)
    trainer.fit_from(parent_dir, params, reporter=warm, **fit)
    assert warm.values[0] > cold.values[0] + 0.05, (warm.values, cold.values)


def test_request_carries_the_parent_and_reads_without_it() -> None:
    request = TrialRequest(study="s", number=5, params={}, seed=1, parent=2, output_dir="/tmp/x")
    assert TrialRequest.from_dict(request.to_dict()) == request
    plain = TrialRequest(study="s", number=5, params={}, seed=1)
    assert "parent" not in plain.to_dict()  # readable by a kubetune from before the field
    store = checkpoints_for(request)
    assert isinstance(store, LocalCheckpoints) and store.root == Path("/tmp/x/checkpoints")
    assert checkpoints_for(plain) is None


@pytest.mark.slow
def test_evolution_children_start_from_their_parents(tmp_path: Path) -> None:
    spec = parse_spec(
        {
            **DIGITS,
            "trainer": {"kind": "torch-mlp", "epochs": 2, "inherit": True},
            "search_space": {
                "n_layers": {"type": "int", "low": 1, "high": 2},
                "units": {"type": "int", "low": 16, "high": 48, "per_layer": "n_layers"},
                "lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True},
            },
            "strategy": {"name": "evolution", "population_size": 3, "sample_size": 2},
            "limits": {"max_trials": 6, "parallel": 1},
            "seed": 0,
        }
    )
    context = RunContext.from_spec(spec, in_memory_study=True, base_dir=tmp_path)
    result = search(spec, context=context)
    trials = sorted(result.study.trials, key=lambda t: t.number)
    children = [t for t in trials if PARENT in t.user_attrs]
    assert len(children) == 3  # every trial after the initial population of 3
    for child in children:
        assert child.user_attrs[METRICS][INHERITED_FROM] == child.user_attrs[PARENT]
    for t in trials[:3]:
        assert INHERITED_FROM not in t.user_attrs[METRICS]
    # Kept in the run's artifact store (a local folder by default), one folder per trial.
    store = open_store(context.artifacts)
    saved = sorted(
        int(key.split("/")[3])
        for key in store.list(f"studies/{spec.name}/trials/")
        if key.endswith("/checkpoint.json")
    )
    assert saved == [t.number for t in trials]
