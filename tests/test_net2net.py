"""Net2Net weight transfer between torch MLPs: widened and deepened children compute the
parent's function before any training; other shape changes are a warm start only."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from kubetune.trainers.net2net import InheritanceError, inherit_mlp
from kubetune.trainers.torch_mlp import build_mlp


def mlp(units: list[int], *, activation: str = "relu", batch_norm: bool = False) -> Any:
    layers = [
        {"units": u, "activation": activation, "dropout": 0.1, "batch_norm": batch_norm}
        for u in units
    ]
    torch.manual_seed(sum(units) + len(units))
    net = build_mlp({"input_dim": 6, "output_dim": 3, "layers": layers})
    if batch_norm:  # non-trivial running statistics, as after training
        for module in net:
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
                module.weight.data.uniform_(0.5, 1.5)
                module.bias.data.uniform_(-0.5, 0.5)
    return net.eval()


X = torch.randn(64, 6, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    ("parent", "child", "options"),
    [
        ([8, 4], [16, 4], {}),  # widen the first layer
        ([8, 4], [8, 13], {}),  # widen the last hidden layer (the output layer adapts)
        ([8, 4], [20, 9], {"activation": "tanh"}),  # widening holds for any activation
        ([8, 4], [12, 6], {"batch_norm": True}),
        ([8, 4], [8, 4, 4], {}),  # deepen: an identity relu layer
        ([8], [8, 8, 8], {"batch_norm": True}),
        ([8, 4], [10, 7, 7, 9], {}),  # widen and deepen, then widen the new layers
    ],
)
def test_widened_and_deepened_child_computes_the_same_function(
    parent: list[int], child: list[int], options: dict[str, Any]
) -> None:
    source, target = mlp(parent, **options), mlp(child, **options)
    assert not torch.allclose(source(X), target(X), atol=1e-3)  # differs before inheriting
    assert inherit_mlp(source, target, seed=1) is True
    torch.testing.assert_close(target.eval()(X), source(X), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    ("parent", "child", "options"),
    [
        ([8, 4], [4, 4], {}),  # narrower
        ([8, 4], [8], {}),  # shallower
        ([8, 4], [8, 4, 4], {"activation": "tanh"}),  # identity through tanh is not identity
        ([], [5], {}),  # a linear model's outputs can be negative: relu changes them
    ],
)
def test_other_shape_changes_are_a_warm_start_and_say_so(
    parent: list[int], child: list[int], options: dict[str, Any]
) -> None:
    source, target = mlp(parent, **options), mlp(child, **options)
    assert inherit_mlp(source, target) is False
    assert torch.isfinite(target(X)).all()


def test_the_same_shape_is_a_copy() -> None:
    source, target = mlp([8, 4]), mlp([8, 4])
    assert inherit_mlp(source, target) is True
    for a, b in zip(source.state_dict().values(), target.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_another_input_or_output_size_is_refused() -> None:
    other = build_mlp({"input_dim": 7, "output_dim": 3, "layers": []})
    with pytest.raises(InheritanceError, match="input size"):
        inherit_mlp(other, mlp([4]))
    other = build_mlp({"input_dim": 6, "output_dim": 2, "layers": []})
    with pytest.raises(InheritanceError, match="output size"):
        inherit_mlp(other, mlp([4]))
