"""Net2Net-style weight transfer between MLPs of different shapes (weight inheritance).

``inherit_mlp(parent, child)`` fills the child MLP's weights from the parent's:

- a layer as wide as the parent's is copied;
- a wider layer is *widened* function-preservingly (Net2WiderNet): each new unit copies a
  random existing unit, and the next layer's incoming weights of a unit and its copies are
  divided by the number of copies, so the sum they feed forward is unchanged (whatever the
  activation, since copies compute the same value); batch-norm statistics are copied along;
- an extra layer is *deepened* in (Net2DeeperNet) as an identity layer (identity weights,
  zero bias, batch norm set to pass values through): function-preserving when its
  activation is ``relu`` and what it receives is already non-negative (the output of a relu
  layer), otherwise only a warm start;
- a narrower layer keeps its first units and a shallower child its first layers (its
  output layer keeps its own initialisation when the widths differ): not
  function-preserving, only a warm start (the child trains from there anyway).

The networks are the ``nn.Sequential`` MLPs of :mod:`kubetune.trainers.torch_mlp`: per
hidden layer a ``Linear``, then optionally ``BatchNorm1d``, an activation and ``Dropout``;
then the output ``Linear``. Input and output sizes must match (same data, same task).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["InheritanceError", "MLPLayer", "inherit_mlp", "mlp_layers"]


class InheritanceError(ValueError):
    """The parent cannot seed the child (another input or output size)."""


@dataclass
class MLPLayer:
    """One hidden layer (or, with ``activation`` None, the output layer) of an MLP."""

    linear: nn.Linear
    norm: nn.BatchNorm1d | None
    activation: type[nn.Module] | None


def mlp_layers(net: nn.Sequential) -> list[MLPLayer]:
    """The hidden layers and then the output layer of ``net``."""
    layers: list[MLPLayer] = []
    for module in net:
        if isinstance(module, nn.Linear):
            layers.append(MLPLayer(module, None, None))
        elif isinstance(module, nn.BatchNorm1d) and layers:
            layers[-1].norm = module
        elif not isinstance(module, nn.Dropout) and layers:
            layers[-1].activation = type(module)
    return layers


@torch.no_grad()
def inherit_mlp(parent: nn.Sequential, child: nn.Sequential, *, seed: int = 0) -> bool:
    """Copy ``parent``'s weights into ``child`` (in place) as far as the shapes allow.

    Returns True when the child computes exactly the parent's function (in eval mode).
    """
    generator = torch.Generator().manual_seed(seed)
    src, dst = mlp_layers(parent), mlp_layers(child)
    if src[0].linear.in_features != dst[0].linear.in_features:
        raise InheritanceError(
            f"input size {dst[0].linear.in_features} != parent's {src[0].linear.in_features}"
        )
    if src[-1].linear.out_features != dst[-1].linear.out_features:
        raise InheritanceError(
            f"output size {dst[-1].linear.out_features} != parent's {src[-1].linear.out_features}"
        )
    # Work on copies of the parent's tensors, hidden layers then the output layer.
    weights = [layer.linear.weight.clone() for layer in src]
    biases = [layer.linear.bias.clone() for layer in src]
    norms = [_norm_state(layer.norm) for layer in src]
    acts = [layer.activation for layer in src]
    preserving = True
    hidden_src, hidden_dst = len(src) - 1, len(dst) - 1
    # Deeper child: identity layers before the output layer, as wide as the last hidden one.
    while hidden_src < hidden_dst:
        width = weights[hidden_src].shape[1]  # what the output layer receives
        new_act = dst[hidden_src].activation
        after_relu = hidden_src > 0 and acts[hidden_src - 1] is nn.ReLU
        preserving &= new_act is nn.ReLU and after_relu
        weights.insert(hidden_src, torch.eye(width))
        biases.insert(hidden_src, torch.zeros(width))
        norms.insert(hidden_src, _identity_norm(width) if dst[hidden_src].norm else None)
        acts.insert(hidden_src, new_act)
        hidden_src += 1
    if hidden_src > hidden_dst:  # shallower child: the output layer sees another width
        preserving = False
        del weights[hidden_dst:hidden_src], biases[hidden_dst:hidden_src]
        del norms[hidden_dst:hidden_src], acts[hidden_dst:hidden_src]
    for i in range(hidden_dst):
        target = dst[i].linear.out_features
        if (dst[i].norm is None) != (norms[i] is None) or acts[i] is not dst[i].activation:
            preserving = False  # another layer kind: the weights are only a start
        have = weights[i].shape[0]
        if target > have:
            _widen(weights, biases, norms, i, target, generator)
        elif target < have:
            preserving = False
            weights[i], biases[i] = weights[i][:target], biases[i][:target]
            if (norm := norms[i]) is not None:
                norms[i] = {k: v[:target] for k, v in norm.items()}
            weights[i + 1] = weights[i + 1][:, :target]
    for i, layer in enumerate(dst):
        if weights[i].shape != layer.linear.weight.shape:
            # The output layer of a shallower child sees another width: its own init.
            preserving = False
            continue
        layer.linear.weight.copy_(weights[i])
        layer.linear.bias.copy_(biases[i])
        if layer.norm is not None:
            state = norms[i] if i < len(norms) and norms[i] is not None else None
            if state is None:
                state = _identity_norm(layer.linear.out_features)
            for name, value in state.items():
                getattr(layer.norm, name).copy_(value)
    return preserving


def _widen(
    weights: list[torch.Tensor],
    biases: list[torch.Tensor],
    norms: list[dict[str, torch.Tensor] | None],
    i: int,
    target: int,
    generator: torch.Generator,
) -> None:
    """Net2WiderNet on hidden layer ``i``: ``target`` units, same function."""
    have = weights[i].shape[0]
    extra = torch.randint(0, have, (target - have,), generator=generator)
    mapping = torch.cat([torch.arange(have), extra])  # new unit j copies old unit mapping[j]
    copies = torch.bincount(mapping, minlength=have).to(weights[i + 1].dtype)
    weights[i], biases[i] = weights[i][mapping], biases[i][mapping]
    if (norm := norms[i]) is not None:
        norms[i] = {k: v[mapping] for k, v in norm.items()}
    weights[i + 1] = weights[i + 1][:, mapping] / copies[mapping]


_NORM_TENSORS = ("weight", "bias", "running_mean", "running_var")


def _norm_state(norm: nn.BatchNorm1d | None) -> dict[str, torch.Tensor] | None:
    if norm is None:
        return None
    return {name: getattr(norm, name).detach().clone() for name in _NORM_TENSORS}


def _identity_norm(width: int, eps: float = 1e-5) -> dict[str, torch.Tensor]:
    # eval-mode batch norm: (x - mean) / sqrt(var + eps) * weight + bias == x
    return {
        "weight": torch.ones(width),
        "bias": torch.zeros(width),
        "running_mean": torch.zeros(width),
        "running_var": torch.full((width,), 1.0 - eps),
    }
