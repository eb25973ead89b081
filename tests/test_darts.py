"""``strategy: darts`` for torch-mlp: which spaces it relaxes, what the supernet learns, and
the whole run (search -> the derived architecture trained from scratch -> final model)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import kubetune
from kubetune.core.plan import plan_search
from kubetune.core.spec import parse_spec
from kubetune.core.strategies.darts import DartsSpace, darts_space, flat_params
from kubetune.core.strategies.factory import darts_options
from kubetune.errors import SpecError
from kubetune.steps.retrieve import retrieve
from kubetune.steps.run import run_experiment

DEPTH2 = {"type": "int", "low": 2, "high": 2}


def _spec(space: dict[str, Any], **strategy: Any) -> Any:
    return parse_spec(
        {
            "name": "darts-t",
            "objective": {"metric": "val_accuracy"},
            "data": {"source": "sklearn:digits"},
            "trainer": {"kind": "torch-mlp", "epochs": 4},
            "search_space": space,
            "strategy": {"name": "darts", **strategy},
            "limits": {"max_trials": 3},
        }
    )


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (
            {"n_layers": {"type": "int", "low": 1, "high": 3}, "activation": ["relu", "tanh"]},
            r"search_space\.n_layers: strategy darts searches operations and widths of a fixed",
        ),
        (
            {"n_layers": 2, "lr": {"type": "float", "low": 1e-3, "high": 1e-1}},
            r"search_space\.lr: strategy darts relaxes only the architecture choices",
        ),
        (
            {
                "n_layers": DEPTH2,
                "units": {"type": "int", "low": 8, "high": 64, "per_layer": "n_layers"},
            },
            r"search_space\.units: strategy darts needs a set of choices \(type: categorical\)",
        ),
        (
            {
                "n_layers": 2,
                "optimizer": "sgd",
                "activation": {
                    "type": "categorical",
                    "choices": ["relu", "tanh"],
                    "when": {"optimizer": "sgd"},
                },
            },
            r"search_space\.activation\.when: strategy darts relaxes no conditional",
        ),
        ({"n_layers": 2, "lr": 0.01}, r"search_space: strategy darts needs at least one of"),
        ({"activation": ["relu", "tanh"]}, r"search_space\.n_layers: strategy darts needs a fixed"),
    ],
    ids=["depth-searched", "lr-searched", "int-widths", "conditional", "nothing", "no-depth"],
)
def test_unsupported_spaces_are_refused_naming_the_parameter(
    space: dict[str, Any], message: str
) -> None:
    spec = _spec(space)
    with pytest.raises(SpecError, match=message):
        plan_search(spec)  # what `kubetune validate` and `run` do before anything runs


def test_plan_refuses_bad_darts_options() -> None:
    with pytest.raises(SpecError, match=r"strategy\.epochs: must be an integer >= 1"):
        darts_options({"epochs": 0})


def test_darts_space_and_flat_names() -> None:
    space = _spec(
        {
            "n_layers": DEPTH2,
            "units": {"type": "categorical", "choices": [8, 64], "per_layer": "n_layers"},
            "activation": ["relu", "tanh"],
            "lr": 0.01,
        }
    ).space
    dspace = darts_space(space)
    assert dspace.n_layers == 2 and dspace.shared == {"activation"}
    assert dspace.fixed == {"n_layers": 2, "lr": 0.01}
    flat = flat_params(dspace, {"units": [64, 8], "activation": "tanh"})
    assert flat == {"units_0": 64, "units_1": 8, "activation": "tanh"}


@pytest.mark.slow
def test_supernet_prefers_the_width_that_works() -> None:
    """A 1-unit bottleneck cannot separate 10 digit classes: the learned width weights must
    move to 64 on both layers, and every layer's weights are a distribution."""
    from kubetune.trainers.darts import darts_search

    spec = _spec(
        {
            "n_layers": DEPTH2,
            "units": {"type": "categorical", "choices": [1, 64], "per_layer": "n_layers"},
            "activation": {
                "type": "categorical",
                "choices": ["relu", "tanh"],
                "per_layer": "n_layers",
            },
        }
    )
    dspace: DartsSpace = darts_space(spec.space)
    result = darts_search(
        dspace, retrieve(spec), epochs=8, arch_lr=3e-3, weight_lr=0.05, batch_size=64, seed=0
    )
    assert result.config["units"] == [64, 64], result.weights
    for name in ("units", "activation"):
        assert len(result.weights[name]) == 2
        for layer in result.weights[name]:
            assert sum(layer.values()) == pytest.approx(1.0, abs=1e-3)
    assert result.weights["units"][0]["64"] > 0.6
    assert result.config["n_layers"] == 2 and set(result.config["activation"]) <= {"relu", "tanh"}


@pytest.mark.slow
def test_run_trains_the_derived_architecture_from_scratch_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = _spec(
        {
            "n_layers": DEPTH2,
            "units": {"type": "categorical", "choices": [4, 64], "per_layer": "n_layers"},
            "activation": ["relu", "tanh"],
            "lr": 0.01,
        },
        epochs=4,
    )
    console = Console(file=open(tmp_path / "out.txt", "w"), width=200)  # noqa: SIM115
    summary = run_experiment(spec, console=console)
    saved = json.loads((tmp_path / "kubetune-runs/darts-t/darts.json").read_text())["result"]
    assert summary.best_params == saved["config"]
    assert summary.completed == 1  # the derived architecture, trained from scratch once
    assert summary.test_metrics["accuracy"] > 0.5
    console.file.close()
    assert "darts units:" in (tmp_path / "out.txt").read_text()

    # running again reuses the search and the trained trial: no supernet, no new trial
    def no_search(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the supernet search ran again")

    monkeypatch.setattr("kubetune.trainers.darts.darts_search", no_search)
    again = run_experiment(spec, console=Console(file=open(tmp_path / "o2.txt", "w")))  # noqa: SIM115
    assert again.best_params == saved["config"] and again.completed == 1


def test_tune_with_an_objective_function_says_darts_needs_a_trainer() -> None:
    with pytest.raises(SpecError, match="darts trains a supernet with a torch trainer"):
        kubetune.tune(
            lambda p: 0.0,
            {
                "n_layers": DEPTH2,
                "activation": {
                    "type": "categorical",
                    "choices": ["relu", "tanh"],
                    "per_layer": "n_layers",
                },
            },
            strategy="darts",
            max_trials=2,
        )
