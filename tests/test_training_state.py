"""Optimizer state in torch checkpoints: a resumed trial trains on like an uninterrupted one.

Digits (bundled with scikit-learn), fixed seeds, CPU, one thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, safe_open, save_file

from kubetune.core.spec import parse_spec
from kubetune.data.dataset import Dataset
from kubetune.steps.retrieve import retrieve
from kubetune.trainers.base import TrainedModel, Trainer
from kubetune.trainers.checkpoints import LocalCheckpoints
from kubetune.trainers.torch_cnn import TorchCNNTrainer
from kubetune.trainers.torch_common import WEIGHTS_FILE
from kubetune.trainers.torch_mlp import TorchMLPTrainer
from kubetune.trainers.training_state import TRAINING_STATE_FILE, TrainingState

# Adam with dropout: moments and dropout masks both matter to the trajectory.
MLP_PARAMS = {"n_layers": 2, "units": 32, "dropout": 0.2, "lr": 3e-3, "batch_size": 64}
CNN_PARAMS = {"n_blocks": 1, "channels": 8, "dropout": 0.1, "lr": 3e-3, "batch_size": 64}
SEED, SPLIT_AT, EPOCHS = 3, 2, 5


class Curve:
    def __init__(self) -> None:
        self.points: list[tuple[int, float]] = []

    def report(self, step: int, value: float) -> None:
        self.points.append((step, value))


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # bit-for-bit reproducible reductions between the runs
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits() -> Dataset:
    spec = parse_spec(
        {
            "name": "digits-resume",
            "objective": {"metric": "val_log_loss", "direction": "minimize"},
            "data": {"source": "sklearn:digits"},
            "search_space": {"lr": 0.003},
        }
    )
    return retrieve(spec)


def weights(model: TrainedModel, folder: Path) -> dict[str, torch.Tensor]:
    model.save(folder)
    return load_file(str(folder / WEIGHTS_FILE))


def fit(trainer: Trainer, params: dict[str, Any], data: Dataset, budget: int) -> Any:
    curve = Curve()
    model = trainer.fit(params, data, budget=budget, seed=SEED, reporter=curve, metric="log_loss")
    return model, curve


def resume(
    trainer: Trainer, params: dict[str, Any], data: Dataset, tmp_path: Path, *, keep: bool
) -> tuple[TrainedModel, Curve]:
    """Train SPLIT_AT epochs, checkpoint (through the store trials use), go on to EPOCHS;
    ``keep=False`` drops the optimizer's tensors first (the generators stay), as if the
    checkpoint held weights only."""
    first, _ = fit(trainer, params, data, SPLIT_AT)
    store = LocalCheckpoints(tmp_path / "checkpoints")
    store.save(7, first, step=SPLIT_AT)
    restored = store.load(7, tmp_path / "unused")
    assert restored is not None and restored.step == SPLIT_AT
    if not keep:
        path = restored.path / TRAINING_STATE_FILE
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata()
        tensors = {k: v for k, v in load_file(str(path)).items() if k.startswith("rng.")}
        save_file(tensors, str(path), metadata=metadata)
    curve = Curve()
    model = trainer.continue_fit(
        restored.path,
        restored.step,
        params,
        data,
        budget=EPOCHS,
        seed=SEED,
        reporter=curve,
        metric="log_loss",
    )
    return model, curve


@pytest.mark.parametrize(
    ("trainer", "params"),
    [(TorchMLPTrainer(), MLP_PARAMS), (TorchCNNTrainer(), CNN_PARAMS)],
    ids=["torch-mlp", "torch-cnn"],
)
def test_a_resumed_run_continues_like_an_uninterrupted_one(
    digits: Dataset, tmp_path: Path, trainer: Trainer, params: dict[str, Any]
) -> None:
    whole, whole_curve = fit(trainer, params, digits, EPOCHS)
    resumed, resumed_curve = resume(trainer, params, digits, tmp_path / "kept", keep=True)
    after = whole_curve.points[SPLIT_AT:]
    assert [s for s, _ in resumed_curve.points] == [s for s, _ in after] == [3, 4, 5]
    # the validation loss after every resumed epoch is the uninterrupted run's
    np.testing.assert_allclose(
        [v for _, v in resumed_curve.points], [v for _, v in after], rtol=1e-5, atol=1e-6
    )
    a, b = weights(whole, tmp_path / "whole"), weights(resumed, tmp_path / "resumed")
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-5, atol=1e-6)

    # Without the optimizer's state (Adam's moments restart; same mini-batches and dropout
    # masks) the same resume drifts away: the comparison above can fail.
    fresh, fresh_curve = resume(trainer, params, digits, tmp_path / "dropped", keep=False)
    c = weights(fresh, tmp_path / "fresh")
    drift = max(float((c[name] - a[name]).abs().max()) for name in a)
    assert drift > 1e-3, drift  # a hundred times the tolerance above
    assert [v for _, v in fresh_curve.points] != pytest.approx([v for _, v in after], rel=1e-5)


def test_checkpoints_keep_the_optimizer_but_stored_models_do_not(
    digits: Dataset, tmp_path: Path
) -> None:
    model, _ = fit(TorchMLPTrainer(), MLP_PARAMS, digits, 1)
    model.save(tmp_path / "model")
    assert not (tmp_path / "model" / TRAINING_STATE_FILE).exists()  # a repository version
    LocalCheckpoints(tmp_path / "cp").save(0, model, step=1)
    saved = load_file(str(tmp_path / "cp" / "000000" / TRAINING_STATE_FILE))
    # Adam: a step count and two moments per parameter tensor, plus the generators
    n_params = sum(1 for _ in model.net.parameters())
    assert sum(k.endswith(".exp_avg") for k in saved) == n_params
    assert sum(k.endswith(".exp_avg_sq") for k in saved) == n_params
    assert {"rng.shuffle", "rng.torch"} <= set(saved)


def _state(params: list[torch.nn.Parameter], lr: float) -> TrainingState:
    return TrainingState(torch.optim.Adam(params, lr=lr), torch.Generator().manual_seed(0))


def _step(net: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    optimizer.zero_grad()
    net(torch.ones(4, 3)).sum().backward()
    optimizer.step()


def test_a_member_with_a_new_lr_keeps_its_moments_and_the_new_rate(tmp_path: Path) -> None:
    """pbt: exploring changes ``lr``; the moments carry over, the rate is the new one."""
    torch.manual_seed(0)
    parent = torch.nn.Linear(3, 2)
    saved = _state(list(parent.parameters()), lr=0.1)
    _step(parent, saved.optimizer)
    saved.save(tmp_path)

    child = torch.nn.Linear(3, 2)
    state = _state(list(child.parameters()), lr=0.02)
    assert state.restore(tmp_path, generators=False) is None
    assert state.optimizer.param_groups[0]["lr"] == 0.02
    for p_old, p_new in zip(parent.parameters(), child.parameters(), strict=True):
        old, new = saved.optimizer.state[p_old], state.optimizer.state[p_new]
        torch.testing.assert_close(new["exp_avg"], old["exp_avg"])
        torch.testing.assert_close(new["exp_avg_sq"], old["exp_avg_sq"])
        assert float(new["step"]) == 1.0


def test_a_widened_child_or_another_optimizer_starts_fresh(tmp_path: Path) -> None:
    torch.manual_seed(0)
    parent = torch.nn.Linear(3, 2)
    saved = _state(list(parent.parameters()), lr=0.1)
    _step(parent, saved.optimizer)
    saved.save(tmp_path)

    wider = torch.nn.Linear(3, 4)  # a Net2Net-widened layer: no history for new units
    state = _state(list(wider.parameters()), lr=0.1)
    assert "shapes differ" in str(state.restore(tmp_path, generators=False))
    assert not state.optimizer.state

    sgd = TrainingState(
        torch.optim.SGD(torch.nn.Linear(3, 2).parameters(), lr=0.1, momentum=0.9),
        torch.Generator(),
    )
    assert "optimizer is Adam, not SGD" in str(sgd.restore(tmp_path, generators=False))
    assert not sgd.optimizer.state

    missing = _state(list(torch.nn.Linear(3, 2).parameters()), lr=0.1)
    assert "not in the checkpoint" in str(missing.restore(tmp_path / "none", generators=False))
