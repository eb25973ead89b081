"""torch-cnn: a small convolutional network for image-shaped data (``data.image_shape``).

Each block is conv ('same' padding) -> [batch norm] -> activation -> [max-pool 2 while the
feature map is at least 2x2] -> [dropout]; then global average pooling and a linear head.

Params (defaults): ``n_blocks`` (2; typically 1-3), ``channels`` (32), ``kernel_size`` (3; 3
or 5), ``activation`` (relu), ``dropout`` (0.0), ``batch_norm`` (false) -- all but
``n_blocks`` take one value per block or a scalar for all -- and the optimizer params of
torch-mlp: ``optimizer`` (adam), ``lr`` (1e-3), ``weight_decay`` (0.0), ``momentum`` (0.9),
``batch_size`` (128). Options: ``epochs`` (20), ``device`` (auto), ``inherit`` (false: an
evolution child starts from its parent's weights wherever the layer shapes match).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from kubetune.core.trial import Reporter
from kubetune.data.dataset import Dataset
from kubetune.errors import DataError, InvalidConfigError, SpecError
from kubetune.trainers.base import StartsFromParent
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
    inherit_matching,
    integer,
    load_network,
    parse_optimizer,
    per_layer,
    pick_device,
    restore_weights,
)

KIND = "torch-cnn"
BLOCK_PARAMS = ("channels", "kernel_size", "activation", "dropout", "batch_norm")
PARAMS = ("n_blocks", *BLOCK_PARAMS, *OPTIMIZER_PARAMS)


def _kernel_size(name: str, value: Any) -> int:
    size = integer(1)(name, value)
    if size not in (3, 5):
        raise InvalidConfigError(f"param {name!r} must be 3 or 5, got {value!r}")
    return size


def image_shape_of(data: Dataset) -> tuple[int, int, int]:
    shape = data.image_shape
    if shape is None:
        raise DataError(
            f"{KIND} needs image-shaped data, but dataset {data.name!r} has no image_shape "
            "(channels, height, width); use torch-mlp for tabular data"
        )
    if math.prod(shape) != data.n_features:
        raise DataError(
            f"image_shape {tuple(shape)} of dataset {data.name!r} has {math.prod(shape)} "
            f"values per row, but the data has {data.n_features} features"
        )
    return (int(shape[0]), int(shape[1]), int(shape[2]))


def parse_blocks(
    params: Mapping[str, Any], image_shape: tuple[int, int, int]
) -> list[dict[str, Any]]:
    """One dict per conv block; decides where pooling still fits the feature map."""
    check_known(params, PARAMS, KIND)
    lists = [params[name] for name in BLOCK_PARAMS if isinstance(params.get(name), list | tuple)]
    n = get(params, "n_blocks", len(lists[0]) if lists else 2, integer(1))
    channels = per_layer(params, "channels", n, 32, integer(1))
    kernels = per_layer(params, "kernel_size", n, 3, _kernel_size)
    acts = per_layer(params, "activation", n, "relu", activation)
    drops = per_layer(params, "dropout", n, 0.0, dropout_rate)
    norms = per_layer(params, "batch_norm", n, False, boolean)
    height, width = image_shape[1:]
    blocks = []
    for c, k, a, d, b in zip(channels, kernels, acts, drops, norms, strict=True):
        pool = height >= 2 and width >= 2
        if pool:
            height, width = height // 2, width // 2
        blocks.append(
            {
                "channels": c,
                "kernel_size": k,
                "activation": a,
                "dropout": d,
                "batch_norm": b,
                "pool": pool,
            }
        )
    return blocks


def build_cnn(architecture: Mapping[str, Any]) -> nn.Sequential:
    channels, height, width = (int(v) for v in architecture["image_shape"])
    # Rows arrive flat (the Dataset contract); the network restores the image itself.
    modules: list[nn.Module] = [nn.Unflatten(1, (channels, height, width))]
    for block in architecture["blocks"]:
        out = int(block["channels"])
        modules.append(nn.Conv2d(channels, out, int(block["kernel_size"]), padding="same"))
        if block["batch_norm"]:
            modules.append(nn.BatchNorm2d(out))
        modules.append(ACTIVATIONS[block["activation"]]())
        if block["pool"]:
            modules.append(nn.MaxPool2d(2))
        if block["dropout"] > 0:
            modules.append(nn.Dropout(float(block["dropout"])))
        channels = out
    modules += [
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(channels, int(architecture["output_dim"])),
    ]
    return nn.Sequential(*modules)


class TorchCNNTrainer(StartsFromParent):
    kind = KIND
    known_options = TORCH_OPTIONS | {"inherit"}
    can_resume = True  # pbt members and inheriting children start from saved weights
    can_continue = True
    # what pbt keeps fixed within a member: the shapes of the network
    structural_params = frozenset(
        {"n_blocks", "channels", "kernel_size", "activation", "batch_norm"}
    )

    @property
    def inherits_weights(self) -> bool:
        return bool(boolean("inherit", self.options.get("inherit", False)))

    def check_data(self, data: Dataset, param_names: Collection[str]) -> None:
        try:
            image_shape_of(data)  # tabular data cannot feed a convolutional net
        except DataError as exc:
            raise SpecError(f"trainer.kind: {exc}") from None
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
        """``parent``: the folder of a saved torch-cnn to start from: every layer whose
        shape matches is copied (see ``inherit``), and the optimizer state when all do."""
        return self._fit(
            params,
            data,
            budget=budget,
            seed=seed,
            reporter=reporter,
            metric=metric,
            final=final,
            init=None if parent is None else inherit_matching(parent, KIND, build_cnn),
            state_from=parent,
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
            init=restore_weights(checkpoint, KIND, build_cnn),
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
        shape = image_shape_of(data)
        architecture: dict[str, Any] = {
            "kind": KIND,
            "image_shape": list(shape),
            "blocks": parse_blocks(params, shape),
        }
        return fit_network(
            architecture=architecture,
            build=build_cnn,
            settings=parse_optimizer(params),
            data=data,
            budget=budget,
            seed=seed,
            reporter=reporter,
            metric=metric,
            final=final,
            options=self.options,
            image_shape=shape,
            init=init,
            trained=trained,
            state_from=state_from,
            exact_resume=exact_resume,
        )

    def load(self, directory: Path) -> TorchModel:
        return load_network(directory, KIND, build_cnn, pick_device(self.options.get("device")))
