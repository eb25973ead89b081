"""``strategy: darts`` for torch-cnn: which spaces it relaxes, what the CNN supernet learns
(per block: channels, activation and kernel size as candidate convolutions), and a whole
small run on the digits as 8x8 images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from kubetune.core.plan import plan_search
from kubetune.core.spec import parse_spec
from kubetune.core.strategies.darts import darts_space, flat_params
from kubetune.errors import SpecError
from kubetune.steps.darts import darts_result
from kubetune.steps.retrieve import retrieve
from kubetune.steps.run import run_experiment

BLOCKS2 = {"type": "int", "low": 2, "high": 2}


def _spec(space: dict[str, Any], *, kind: str = "torch-cnn", **strategy: Any) -> Any:
    return parse_spec(
        {
            "name": "darts-cnn-t",
            "objective": {"metric": "val_accuracy"},
            "data": {"source": "sklearn:digits", "image_shape": [1, 8, 8]},
            "trainer": {"kind": kind, "epochs": 4},
            "search_space": space,
            "strategy": {"name": "darts", **strategy},
            "limits": {"max_trials": 3},
        }
    )


def _per_block(choices: list[Any]) -> dict[str, Any]:
    return {"type": "categorical", "choices": choices, "per_layer": "n_blocks"}


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (
            {"n_blocks": {"type": "int", "low": 1, "high": 3}, "kernel_size": [3, 5]},
            r"search_space\.n_blocks: strategy darts searches operations and widths of a fixed",
        ),
        (
            {"n_blocks": 2, "dropout": {"type": "float", "low": 0.0, "high": 0.5}},
            r"search_space\.dropout: strategy darts relaxes only the architecture choices"
            r" channels, activation, kernel_size \(torch-cnn\)",
        ),
        (
            {"n_blocks": BLOCKS2, "kernel_size": _per_block([3, 7])},
            r"search_space\.kernel_size: torch-cnn's kernel sizes are 3 or 5",
        ),
        (
            {"n_blocks": BLOCKS2, "channels": {"type": "int", "low": 4, "high": 32}},
            r"search_space\.channels: strategy darts needs a set of choices",
        ),
        (
            {"n_blocks": BLOCKS2, "kernel_size": 7, "channels": _per_block([4, 8])},
            r"search_space\.kernel_size: torch-cnn's kernel sizes are 3 or 5 \(got \[7\]\)",
        ),
        ({"n_blocks": 2, "lr": 0.01}, r"search_space: strategy darts needs at least one of"),
    ],
    ids=["depth-searched", "dropout-searched", "kernel-7", "int-channels", "fixed-7", "nothing"],
)
def test_unsupported_cnn_spaces_are_refused_naming_the_parameter(
    space: dict[str, Any], message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        plan_search(_spec(space))  # what `kubetune validate` and `run` do first


@pytest.mark.parametrize("check", ["validate", "search-step"])
def test_the_space_is_checked_against_the_trainer(check: str, tmp_path: Path) -> None:
    """An MLP space under torch-cnn names the CNN's depth parameter, a CNN space under
    torch-mlp names the MLP's, and a non-torch trainer is refused -- in `kubetune validate`
    (the plan) and again in the search step, before any data is loaded."""

    def refuse(spec: Any, message: str) -> None:
        with pytest.raises(SpecError, match=message):
            plan_search(spec) if check == "validate" else darts_result(spec, tmp_path)

    refuse(
        _spec({"n_layers": 2, "activation": ["relu", "tanh"]}),
        r"search_space\.n_blocks: strategy darts needs a fixed number of blocks",
    )
    refuse(
        _spec({"n_blocks": 2, "kernel_size": [3, 5]}, kind="torch-mlp"),
        r"search_space\.n_layers: strategy darts needs a fixed number of layers",
    )
    refuse(
        _spec({"n_blocks": 2, "kernel_size": [3, 5]}, kind="xgboost"),
        r"trainer\.kind: strategy darts supports torch-mlp, torch-cnn \(got xgboost\)",
    )


def test_cnn_darts_space_and_flat_names() -> None:
    spec = _spec(
        {
            "n_blocks": BLOCKS2,
            "channels": _per_block([4, 16]),
            "kernel_size": [3, 5],
            "activation": _per_block(["relu", "tanh"]),
            "batch_norm": True,
        }
    )
    dspace = darts_space(spec.space, "torch-cnn")
    assert dspace.trainer == "torch-cnn" and dspace.n_layers == 2
    assert dspace.shared == {"kernel_size"}
    assert dspace.fixed == {"n_blocks": 2, "batch_norm": True}
    assert darts_space(spec.space) == dspace  # the factory infers the trainer from n_blocks
    flat = flat_params(
        dspace, {"channels": [16, 4], "kernel_size": 5, "activation": ["tanh", "relu"]}
    )
    assert flat == {
        "channels_0": 16,
        "channels_1": 4,
        "kernel_size": 5,
        "activation_0": "tanh",
        "activation_1": "relu",
    }


@pytest.mark.slow
def test_cnn_supernet_prefers_the_width_that_works() -> None:
    """A 1-channel block feeds global average pooling one number: it cannot separate 10
    digit classes, so the learned channel weights must move to 24 on every block; the
    kernel and activation weights of each block are distributions over their candidates."""
    from kubetune.trainers.darts import darts_search

    spec = _spec(
        {
            "n_blocks": BLOCKS2,
            "channels": _per_block([1, 24]),
            "kernel_size": _per_block([3, 5]),
            "activation": ["relu", "tanh"],
        }
    )
    result = darts_search(
        darts_space(spec.space, "torch-cnn"),
        retrieve(spec),
        epochs=6,
        arch_lr=3e-3,
        weight_lr=0.05,
        batch_size=64,
        seed=0,
    )
    assert result.config["channels"] == [24, 24], result.weights
    assert result.weights["channels"][1]["24"] > 0.6, result.weights
    assert len(result.weights["kernel_size"]) == 2 and len(result.weights["activation"]) == 1
    for name in ("channels", "kernel_size", "activation"):
        for block in result.weights[name]:
            assert sum(block.values()) == pytest.approx(1.0, abs=1e-3)
    assert set(result.config["kernel_size"]) <= {3, 5}
    assert result.config["activation"] in ("relu", "tanh") and result.config["n_blocks"] == 2


@pytest.mark.slow
def test_cnn_run_trains_the_derived_architecture_and_reports_the_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """digits as [1, 8, 8] images: supernet search, the derived CNN trained from scratch as
    the one trial, the final training, the learned weights printed and kept; a second run
    reuses the search and the trial."""
    monkeypatch.chdir(tmp_path)
    spec = _spec(
        {
            "n_blocks": BLOCKS2,
            "channels": _per_block([2, 16]),
            "kernel_size": _per_block([3, 5]),
            "activation": ["relu", "tanh"],
            "lr": 0.01,
        },
        epochs=3,
    )
    out = tmp_path / "out.txt"
    with out.open("w") as file:
        summary = run_experiment(spec, console=Console(file=file, width=200))
    saved = json.loads((tmp_path / "kubetune-runs/darts-cnn-t/darts.json").read_text())["result"]
    assert summary.best_params == saved["config"]
    assert set(saved["weights"]) == {"channels", "kernel_size", "activation"}
    assert summary.completed == 1  # the derived architecture, trained from scratch once
    assert summary.test_metrics["accuracy"] > 0.5
    printed = out.read_text()
    assert "darts channels:" in printed and "darts kernel_size:" in printed

    def no_search(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the supernet search ran again")

    monkeypatch.setattr("kubetune.trainers.darts.darts_search", no_search)
    with (tmp_path / "o2.txt").open("w") as file:
        again = run_experiment(spec, console=Console(file=file))
    assert again.best_params == saved["config"] and again.completed == 1
