"""Second-order DARTS (``strategy: {name: darts, order: 2}``): the finite-difference
architecture gradient against the exact unrolled one, the weights left as they were, the
option's checks, and a whole search."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")

from torch.func import functional_call  # noqa: E402

from kubetune.core.plan import plan_search  # noqa: E402
from kubetune.core.spec import parse_spec  # noqa: E402
from kubetune.core.strategies.darts import darts_space  # noqa: E402
from kubetune.core.strategies.factory import darts_options  # noqa: E402
from kubetune.errors import SpecError  # noqa: E402
from kubetune.steps.retrieve import retrieve  # noqa: E402
from kubetune.trainers.darts import _MLPSuperNet, darts_search  # noqa: E402
from kubetune.trainers.darts_step import architecture_gradients  # noqa: E402

SPACE = {
    "n_layers": {"type": "int", "low": 2, "high": 2},
    "units": {"type": "categorical", "choices": [2, 6], "per_layer": "n_layers"},
    # smooth activations: the finite difference of a ReLU net's gradient is off wherever a
    # perturbation of the weights crosses a kink (a property of the method, not of the code)
    "activation": {"type": "categorical", "choices": ["tanh", "gelu"], "per_layer": "n_layers"},
}


def _spec(**strategy: Any) -> Any:
    return parse_spec(
        {
            "name": "darts-2nd",
            "objective": {"metric": "val_accuracy"},
            "data": {"source": "sklearn:digits"},
            "trainer": {"kind": "torch-mlp", "epochs": 2},
            "search_space": SPACE,
            "strategy": {"name": "darts", **strategy},
            "limits": {"max_trials": 1},
        }
    )


def _tiny_net_and_batches() -> tuple[Any, Any, tuple[Any, Any], tuple[Any, Any]]:
    torch.manual_seed(0)
    net = _MLPSuperNet(darts_space(_spec().space), input_dim=4, output_dim=3).double()
    with torch.no_grad():  # architecture logits away from 0, so each choice matters
        for p in net.arch.parameters():
            p.copy_(torch.randn_like(p))
    loss_fn = torch.nn.CrossEntropyLoss()
    train = (torch.randn(16, 4, dtype=torch.float64), torch.randint(3, (16,)))
    val = (torch.randn(12, 4, dtype=torch.float64), torch.randint(3, (12,)))
    return net, loss_fn, val, train


def _exact_unrolled_gradient(net: Any, loss_fn: Any, val: Any, train: Any, xi: float) -> list:
    """d/d alpha of L_val(w - xi * grad_w L_train(w, alpha), alpha), by autograd through the
    virtual step (second derivatives included): what the finite difference approximates."""
    names = dict(net.named_parameters())
    arch_ids = {id(p) for p in net.arch.parameters()}
    arch_names = [n for n, p in names.items() if id(p) in arch_ids]
    weight_names = [n for n, p in names.items() if id(p) not in arch_ids]
    weights = [names[n] for n in weight_names]
    train_loss = loss_fn(net(train[0]), train[1])
    step = torch.autograd.grad(train_loss, weights, create_graph=True)
    ahead = {n: w - xi * g for n, w, g in zip(weight_names, weights, step, strict=True)}
    ahead.update({n: names[n] for n in arch_names})
    val_loss = loss_fn(functional_call(net, ahead, (val[0],)), val[1])
    return list(torch.autograd.grad(val_loss, [names[n] for n in arch_names]))


def test_second_order_gradient_matches_the_exact_unrolled_gradient() -> None:
    net, loss_fn, val, train = _tiny_net_and_batches()
    xi = 0.5  # a large virtual step, so the second-order term is far from negligible
    exact = _exact_unrolled_gradient(net, loss_fn, val, train, xi)
    architecture_gradients(net, loss_fn, val, train, order=2, xi=xi)
    approx = [p.grad for p in net.arch.parameters()]
    architecture_gradients(net, loss_fn, val, train, order=1, xi=xi)
    first = [p.grad for p in net.arch.parameters()]
    def norm(tensors: list) -> float:
        return float(torch.sqrt(sum((t * t).sum() for t in tensors)))

    error = norm([a - e for a, e in zip(approx, exact, strict=True)])
    correction = norm([f - e for f, e in zip(first, exact, strict=True)])
    assert error < 1e-5 * norm(exact), (approx, exact)
    # and the second-order term is far from negligible: not first order under another name
    assert correction > 0.05 * norm(exact), (first, exact)


def test_first_order_is_the_validation_gradient_at_the_current_weights() -> None:
    net, loss_fn, val, train = _tiny_net_and_batches()
    arch = list(net.arch.parameters())
    expected = torch.autograd.grad(loss_fn(net(val[0]), val[1]), arch)
    architecture_gradients(net, loss_fn, val, train, order=1, xi=0.1)
    for p, e in zip(arch, expected, strict=True):
        assert torch.equal(p.grad, e)


def test_second_order_puts_the_weights_back() -> None:
    net, loss_fn, val, train = _tiny_net_and_batches()
    before = [w.detach().clone() for w in net.weight_parameters()]
    architecture_gradients(net, loss_fn, val, train, order=2, xi=0.3)
    for w, b in zip(net.weight_parameters(), before, strict=True):
        assert torch.equal(w, b)
        assert w.grad is None  # the weight step's gradients are not polluted


def test_order_option_is_checked_and_first_order_keeps_its_old_options() -> None:
    assert "order" not in darts_options({})
    assert "order" not in darts_options({"order": 1})
    assert darts_options({"order": 2})["order"] == 2
    for bad in (3, 0, True, "2"):
        with pytest.raises(SpecError, match=r"strategy\.order: 1 \(first-order DARTS\) or 2"):
            darts_options({"order": bad})
    # what `kubetune validate` and `run` check before anything runs
    with pytest.raises(SpecError, match=r"strategy\.order: 1 \(first-order DARTS\) or 2"):
        plan_search(_spec(order=3))
    plan_search(_spec(order=2))


@pytest.mark.slow
def test_second_order_search_derives_an_architecture() -> None:
    spec = _spec(order=2)
    options = darts_options(spec.strategy.options)
    result = darts_search(
        darts_space(spec.space),
        retrieve(spec),
        epochs=2,
        arch_lr=3e-3,
        weight_lr=0.05,
        batch_size=64,
        seed=0,
        order=options["order"],
    )
    assert len(result.config["units"]) == 2 and set(result.config["units"]) <= {2, 6}
    for layer in result.weights["units"] + result.weights["activation"]:
        assert sum(layer.values()) == pytest.approx(1.0, abs=1e-3)


def _cnn_with_dropout_and_batch_norm() -> Any:
    from kubetune.trainers.darts_cnn import CNNSuperNet

    spec = parse_spec(
        {
            "name": "darts-2nd-cnn",
            "objective": {"metric": "val_accuracy"},
            "data": {"source": "sklearn:digits", "image_shape": [1, 8, 8]},
            "trainer": {"kind": "torch-cnn", "epochs": 1},
            "search_space": {
                "n_blocks": {"type": "int", "low": 2, "high": 2},
                "channels": {"type": "categorical", "choices": [4, 8], "per_layer": "n_blocks"},
                "dropout": 0.5,
                "batch_norm": True,
            },
            "strategy": {"name": "darts"},
            "limits": {"max_trials": 1},
        }
    )
    torch.manual_seed(0)
    net = CNNSuperNet(darts_space(spec.space, "torch-cnn"), (1, 8, 8), 10).double().train()
    train = (torch.randn(32, 1, 8, 8, dtype=torch.float64), torch.randint(10, (32,)))
    val = (torch.randn(32, 1, 8, 8, dtype=torch.float64), torch.randint(10, (32,)))
    return net, torch.nn.CrossEntropyLoss(), val, train


def test_both_ends_of_the_difference_draw_the_same_dropout_masks() -> None:
    """The passes at w + eps*v and w - eps*v (the 3rd and 4th forward of a second-order
    step) must see one dropout mask: another mask's noise, divided by eps, would swamp the
    Hessian term."""
    net, loss_fn, val, train = _cnn_with_dropout_and_batch_norm()
    masks: list[Any] = []  # the random state each dropout draws its mask from

    def record(module: Any, inputs: Any) -> None:
        masks.append(torch.get_rng_state())

    drops = [m for m in net.modules() if isinstance(m, torch.nn.Dropout)]
    assert drops
    for m in drops:
        m.register_forward_pre_hook(record)
    architecture_gradients(net, loss_fn, val, train, order=2, xi=0.05)
    per_pass = [masks[i : i + len(drops)] for i in range(0, len(masks), len(drops))]
    assert len(per_pass) == 4  # virtual step, validation at w', then w + eps*v, w - eps*v
    plus, minus = per_pass[2], per_pass[3]
    assert all(torch.equal(a, b) for a, b in zip(plus, minus, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(per_pass[0], plus, strict=True))


def test_second_order_leaves_batch_norm_statistics_as_they_were() -> None:
    net, loss_fn, val, train = _cnn_with_dropout_and_batch_norm()
    before = [b.detach().clone() for b in net.buffers()]
    architecture_gradients(net, loss_fn, val, train, order=2, xi=0.05)
    assert all(torch.equal(b, b0) for b, b0 in zip(net.buffers(), before, strict=True))
    assert all(p.grad is not None for p in net.arch.parameters())


def test_the_specs_order_reaches_the_supernet_search(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``strategy: {name: darts, order: 2}`` through the search step (what ``kubetune run``
    calls): every architecture step is second order, and the saved result records it."""
    import json

    import kubetune.trainers.darts as darts_module
    from kubetune.steps.darts import darts_result

    orders: list[int] = []
    real = darts_module.architecture_gradients

    def counting(*args: Any, order: int, xi: float) -> None:
        orders.append(order)
        real(*args, order=order, xi=xi)

    monkeypatch.setattr(darts_module, "architecture_gradients", counting)
    darts_result(_spec(order=2, epochs=1), tmp_path)
    assert orders and set(orders) == {2}
    assert json.loads((tmp_path / "darts.json").read_text())["options"]["order"] == 2
    orders.clear()
    darts_result(_spec(epochs=1), tmp_path / "first")
    assert orders and set(orders) == {1}
