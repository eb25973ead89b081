"""DARTS' architecture step, first or second order (Liu, Simonyan and Yang, 2019, sec. 2.3).

First order takes the validation loss's gradient in the architecture logits at the current
weights. Second order takes it at the weights one virtual SGD step ahead,
``w' = w - xi * grad_w L_train(w, alpha)``, which adds the term
``-xi * d2 L_train / (d alpha d w) . grad_w' L_val(w', alpha)``; that Hessian-vector
product is a central finite difference of ``grad_alpha L_train`` at ``w +- eps * v`` with
``v = grad_w' L_val`` and ``eps = 0.01 / |v|``, as the paper does, so a step costs about
three times first order's gradients and no second derivatives. Both ends of the difference
draw the same dropout masks (one random state, replayed), or the masks' noise divided by
``eps`` would swamp the term; batch-norm running statistics are put back afterwards, so the
extra passes do not count as data seen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from kubetune.core.strategies.darts import DARTS_ORDERS
from kubetune.trainers.darts_base import SuperNet

__all__ = ["architecture_gradients"]

Batch = tuple[torch.Tensor, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def architecture_gradients(
    net: SuperNet,
    loss_fn: LossFn | nn.Module,
    val: Batch,
    train: Batch,
    *,
    order: int,
    xi: float,
) -> None:
    """Set ``.grad`` of ``net``'s architecture logits for one architecture step; the
    weights are left as they were (second order moves them and puts them back)."""
    arch = list(net.arch.parameters())
    if order == 1:
        grads = torch.autograd.grad(loss_fn(net(val[0]), val[1]), arch, allow_unused=True)
        _set_grads(arch, grads)
        return
    if order != 2:
        raise ValueError(f"order: one of {DARTS_ORDERS} (got {order!r})")
    weights = net.weight_parameters()
    saved = [w.detach().clone() for w in weights]
    buffers = [b.detach().clone() for b in net.buffers()]
    device = saved[0].device
    rng_devices = [device] if device.type == "cuda" else []
    try:
        step = _grads(loss_fn(net(train[0]), train[1]), weights)
        with torch.no_grad():  # the virtual step w' = w - xi * grad_w L_train
            for w, g in zip(weights, step, strict=True):
                w.sub_(xi * g)
        both = _grads(loss_fn(net(val[0]), val[1]), [*arch, *weights])
        d_arch, v = both[: len(arch)], both[len(arch) :]
        norm = sum(float((g * g).sum()) for g in v) ** 0.5
        eps = 0.01 / (norm + 1e-12)
        slopes = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                for w, w0, g in zip(weights, saved, v, strict=True):
                    w.copy_(w0 + sign * eps * g)
            with torch.random.fork_rng(devices=rng_devices):  # the same dropout both times
                slopes.append(_grads(loss_fn(net(train[0]), train[1]), arch))
        hessian_v = [(p - m) / (2 * eps) for p, m in zip(*slopes, strict=True)]
        _set_grads(arch, [d - xi * h for d, h in zip(d_arch, hessian_v, strict=True)])
    finally:
        with torch.no_grad():
            for w, w0 in zip(weights, saved, strict=True):
                w.copy_(w0)
            for b, b0 in zip(net.buffers(), buffers, strict=True):
                b.copy_(b0)


def _grads(loss: torch.Tensor, params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """d loss / d params, zeros for a parameter the loss does not use."""
    grads = torch.autograd.grad(loss, list(params), allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]


def _set_grads(params: Sequence[nn.Parameter], grads: Sequence[torch.Tensor | None]) -> None:
    for p, g in zip(params, grads, strict=True):
        p.grad = None if g is None else g.detach()
