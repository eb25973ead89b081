"""torch-mlp: a multilayer perceptron whose depth, widths and activations are searched.

Params (defaults): ``n_layers`` (2; 0 gives a linear model), ``units`` (128), ``activation``
(relu; relu, gelu, tanh, silu, elu, leaky_relu), ``dropout`` (0.0), ``batch_norm`` (false),
``optimizer`` (adam; adam, adamw, sgd), ``lr`` (1e-3), ``weight_decay`` (0.0), ``momentum``
(0.9, sgd only), ``batch_size`` (128). ``units``, ``activation``, ``dropout`` and
``batch_norm`` take one value per layer or a scalar for all.
Options: ``epochs`` (20, used when no budget is given), ``device`` (auto), ``inherit``
(false): keep each trial's weights and start an evolution child from its parent's, widened
or deepened function-preservingly where the shapes allow (:mod:`kubetune.trainers.net2net`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from kubetune.core.trial import Reporter
from kubetune.data.dataset import Dataset
from kubetune.errors import RepositoryError
from kubetune.trainers.base import StartsFromParent
from kubetune.trainers.net2net import InheritanceError, inherit_mlp
from kubetune.trainers.torch_common import (
    ACTIVATIONS,
    OPTIMIZER_PARAMS,
    TORCH_OPTIONS,
    TorchModel,
    activation,
    boolean,
    check_known,
    check_param_names,
    dropout_rate,
    fit_network,
    get,
    integer,
    load_network,
    parse_optimizer,
    per_layer,
    pick_device,
    restore_weights,
)

KIND = "torch-mlp"
_log = logging.getLogger(__name__)
LAYER_PARAMS = ("units", "activation", "dropout", "batch_norm")
PARAMS = ("n_layers", *LAYER_PARAMS, *OPTIMIZER_PARAMS)


def parse_layers(params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One dict per hidden layer; validates every architecture param."""
    check_known(params, PARAMS, KIND)
    # A fixed config may give only the per-layer lists: their length is the depth.
    lists = [params[name] for name in LAYER_PARAMS if isinstance(params.get(name), list | tuple)]
    n = get(params, "n_layers", len(lists[0]) if lists else 2, integer(0))
    units = per_layer(params, "units", n, 128, integer(1))
    acts = per_layer(params, "activation", n, "relu", activation)
    drops = per_layer(params, "dropout", n, 0.0, dropout_rate)
    norms = per_layer(params, "batch_norm", n, False, boolean)
    return [
        {"units": u, "activation": a, "dropout": d, "batch_norm": b}
        for u, a, d, b in zip(units, acts, drops, norms, strict=True)
    ]


def build_mlp(architecture: Mapping[str, Any]) -> nn.Sequential:
    modules: list[nn.Module] = []
    width = int(architecture["input_dim"])
    for layer in architecture["layers"]:
        units = int(layer["units"])
        modules.append(nn.Linear(width, units))
        if layer["batch_norm"]:
            modules.append(nn.BatchNorm1d(units))
        modules.append(ACTIVATIONS[layer["activation"]]())
        if layer["dropout"] > 0:
            modules.append(nn.Dropout(float(layer["dropout"])))
        width = units
    modules.append(nn.Linear(width, int(architecture["output_dim"])))
    return nn.Sequential(*modules)


class TorchMLPTrainer(StartsFromParent):
    kind = KIND
    known_options = TORCH_OPTIONS | {"inherit"}
    can_resume = True
    can_continue = True
    structural_params = frozenset({"n_layers", "units", "activation", "batch_norm"})

    @property
    def inherits_weights(self) -> bool:
        return bool(boolean("inherit", self.options.get("inherit", False)))

    def check_data(self, data: Dataset, param_names: Collection[str]) -> None:
        check_param_names(param_names, PARAMS, KIND)

    def fit(
        self,
        params: dict[str, Any],
        data: Dataset,
        *,
        budget: int | None,
        seed: int,
        reporter: Reporter,
        metric: str,
        final: bool = False,
        parent: Path | None = None,
    ) -> TorchModel:
        """``parent``: the folder of a saved torch-mlp to start from (see ``inherit``)."""
        return self._fit(
            params,
            data,
            budget=budget,
            seed=seed,
            reporter=reporter,
            metric=metric,
            final=final,
            init=None if parent is None else _inherit_from(parent, seed),
            state_from=parent,  # the optimizer too, unless Net2Net changed a shape
        )

    def continue_fit(
        self,
        checkpoint: Path,
        trained: int,
        params: dict[str, Any],
        data: Dataset,
        *,
        budget: int,
        seed: int,
        reporter: Reporter,
        metric: str,
    ) -> TorchModel:
        return self._fit(
            params,
            data,
            budget=budget,
            seed=seed,
            reporter=reporter,
            metric=metric,
            final=False,
            init=restore_weights(checkpoint, KIND, build_mlp),
            trained=trained,
            state_from=checkpoint,
            exact_resume=True,
        )

    def _fit(
        self,
        params: dict[str, Any],
        data: Dataset,
        *,
        budget: int | None,
        seed: int,
        reporter: Reporter,
        metric: str,
        final: bool,
        init: Any,
        trained: int = 0,
        state_from: Path | None = None,
        exact_resume: bool = False,
    ) -> TorchModel:
        architecture: dict[str, Any] = {"kind": KIND, "layers": parse_layers(params)}
        return fit_network(
            architecture=architecture,
            build=build_mlp,
            settings=parse_optimizer(params),
            data=data,
            budget=budget,
            seed=seed,
            reporter=reporter,
            metric=metric,
            final=final,
            options=self.options,
            init=init,
            trained=trained,
            state_from=state_from,
            exact_resume=exact_resume,
        )

    def load(self, directory: Path) -> TorchModel:
        return load_network(directory, KIND, build_mlp, pick_device(self.options.get("device")))


def _inherit_from(parent: Path, seed: int) -> Any:
    def init(net: nn.Module) -> None:
        try:
            source = load_network(parent, KIND, build_mlp, pick_device("cpu"))
            if not (isinstance(net, nn.Sequential) and isinstance(source.net, nn.Sequential)):
                raise InheritanceError("weight inheritance needs two sequential MLPs")
            inherit_mlp(source.net, net, seed=seed)
        except (RepositoryError, InheritanceError) as exc:
            # A parent that cannot seed this child (other data): a cold start, not a failure.
            _log.warning("not inheriting weights from %s: %s", parent, exc)

    return init
