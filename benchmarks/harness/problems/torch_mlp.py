"""The torch MLP on scikit-learn's digits, with epochs as the fidelity (real training).

Every peer trains the same model with the same code: the loss reported after each epoch is
the validation error (1 - accuracy) on a fixed 25 % split. One torch thread per trial, so
two trials in flight use the machine's two cores.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from harness.problems.base import DartsPlan, Problem, Report

MAX_EPOCHS = 9  # 1, 3, 9: Hyperband's rungs with a reduction factor of 3
DARTS_DEPTH = 2
# DARTS searches the architecture only: the other parameters stay at these values
DARTS_FIXED = {"dropout": 0.1, "lr": 3e-3, "weight_decay": 1e-4, "batch_size": 64}


def _darts_params(config: dict[str, Any]) -> dict[str, Any]:
    return {**DARTS_FIXED, "n_layers": DARTS_DEPTH, "units": int(config["units"])}


@functools.cache
def _split() -> tuple[Any, Any, Any, Any]:
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    xt, xv, yt, yv = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    return torch.from_numpy(xt), torch.from_numpy(yt), torch.from_numpy(xv), torch.from_numpy(yv)


class DigitsMLP(Problem):
    name = "torch-mlp-digits"
    family = "torch"
    max_budget = MAX_EPOCHS
    needs = ("torch",)
    cost_unit = "epoch"
    # DARTS relaxes the width (one for every layer, as this space has) at a fixed depth;
    # kubetune's torch-mlp supernet trains on kubetune's digits split (benchmarks/harness/
    # peers/darts_peer.py)
    darts = DartsPlan(
        space={
            "n_layers": {"type": "int", "low": DARTS_DEPTH, "high": DARTS_DEPTH},
            "units": {"type": "categorical", "choices": [16, 32, 64, 128]},
            "activation": "relu",
            "lr": 0.01,
        },
        data="sklearn:digits",
        epochs=2 * MAX_EPOCHS,
        to_params=_darts_params,
    )

    @property
    def space(self) -> Mapping[str, Mapping[str, Any]]:
        return {
            "n_layers": {"type": "int", "low": 1, "high": 3},
            "units": {"type": "int", "low": 16, "high": 128, "log": True},
            "dropout": {"type": "float", "low": 0.0, "high": 0.5},
            "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
            "weight_decay": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
            "batch_size": {"type": "categorical", "choices": [32, 64, 128]},
        }

    def evaluate(self, params: Mapping[str, Any], budget: int | None = None) -> float:
        errors: list[float] = []
        self._train(params, budget or MAX_EPOCHS, lambda step, value: errors.append(value))
        return errors[-1]

    def objective(self, params: Mapping[str, Any], report: Report | None = None) -> float:
        errors: list[float] = []

        def each_epoch(step: int, value: float) -> None:
            errors.append(value)
            if report is not None:
                report(step, value)

        self._train(params, MAX_EPOCHS, each_epoch)
        return errors[-1]

    def _train(self, params: Mapping[str, Any], epochs: int, each_epoch: Report) -> None:
        import torch
        from torch import nn

        torch.set_num_threads(1)
        torch.manual_seed(0)
        xt, yt, xv, yv = _split()
        layers: list[nn.Module] = []
        width = xt.shape[1]
        for _ in range(int(params["n_layers"])):
            layers += [
                nn.Linear(width, int(params["units"])),
                nn.ReLU(),
                nn.Dropout(float(params["dropout"])),
            ]
            width = int(params["units"])
        model = nn.Sequential(*layers, nn.Linear(width, 10))
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=float(params["lr"]), weight_decay=float(params["weight_decay"])
        )
        batch = int(params["batch_size"])
        generator = torch.Generator().manual_seed(0)
        for epoch in range(1, epochs + 1):
            model.train()
            order = torch.randperm(len(xt), generator=generator)
            for start in range(0, len(xt), batch):
                idx = order[start : start + batch]
                optimizer.zero_grad()
                nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
                optimizer.step()
            model.eval()
            with torch.no_grad():
                accuracy = (model(xv).argmax(dim=1) == yv).float().mean().item()
            each_epoch(epoch, 1.0 - accuracy)
