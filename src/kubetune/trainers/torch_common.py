"""What the torch trainers share: params parsing, device and seeding, the epoch loop, storage.

A torch trainer only turns its params into an *architecture* (a JSON-able dict) and builds an
``nn.Module`` from one; :func:`fit_network` and :func:`load_network` do the rest, so training,
reporting and safetensors storage behave identically for every network kind.

Params convention: per-layer params are lists of length ``n_layers`` (or ``n_blocks``); a
scalar is broadcast to every layer; an absent param takes its default.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from kubetune.core.trial import Reporter
from kubetune.data.dataset import Dataset
from kubetune.data.raw import quoted
from kubetune.errors import InvalidConfigError, KubetuneError, RepositoryError, SpecError
from kubetune.trainers.base import TrainedModel
from kubetune.trainers.metrics import check_metric, compute_metric, count_classes
from kubetune.trainers.training_state import TrainingState

WEIGHTS_FILE = "model.safetensors"
ARCHITECTURE_FILE = "architecture.json"
FORMAT_VERSION = 1
DEFAULT_EPOCHS = 20
_EVAL_CHUNK = 8192  # rows per forward pass at prediction time: bounds memory on big splits

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
}

# --------------------------------------------------------------------------- params

T = TypeVar("T")
Convert = Callable[[str, Any], T]

_log = logging.getLogger(__name__)


#: ``trainer:`` options of the torch trainers.
TORCH_OPTIONS = frozenset({"epochs", "device", "threads"})


def check_param_names(names: Iterable[str], allowed: Iterable[str], kind: str) -> None:
    """The search space's names against the trainer's, before any trial (SpecError)."""
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        raise SpecError(
            f"search_space.{unknown[0]}: {kind} does not accept param(s)"
            f" {quoted(unknown)}; valid params: {', '.join(sorted(allowed))}"
        )


def check_known(params: Mapping[str, Any], allowed: Iterable[str], kind: str) -> None:
    """Unknown names are usually typos in the spec: name them instead of ignoring them."""
    allowed = set(allowed)
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise InvalidConfigError(
            f"{kind} does not accept param(s) {', '.join(map(repr, unknown))}; "
            f"valid params: {', '.join(sorted(allowed))}"
        )


def get(params: Mapping[str, Any], name: str, default: Any, convert: Convert[T]) -> T:
    return convert(name, params.get(name, default))


def per_layer(
    params: Mapping[str, Any], name: str, n: int, default: Any, convert: Convert[T]
) -> list[T]:
    """``n`` values of ``name``: a list of length ``n``, or one value repeated."""
    value = params.get(name, default)
    if isinstance(value, list | tuple):
        if len(value) != n:
            raise InvalidConfigError(
                f"param {name!r} has {len(value)} values but there are {n} layers/blocks"
            )
        return [convert(name, v) for v in value]
    return [convert(name, value)] * n


def integer(lo: int, hi: int | None = None) -> Convert[int]:
    def convert(name: str, value: Any) -> int:
        # Accept 64.0 (JSON round trips, float samplers) but not 64.5 or True.
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            raise InvalidConfigError(f"param {name!r} must be an integer, got {value!r}")
        if value < lo or (hi is not None and value > hi):
            bounds = f">= {lo}" if hi is None else f"between {lo} and {hi}"
            raise InvalidConfigError(f"param {name!r} must be {bounds}, got {value!r}")
        return int(value)

    return convert


def number(lo: float, hi: float | None = None, *, lo_open: bool = False) -> Convert[float]:
    """A float in [lo, hi) (or (lo, hi) with ``lo_open``); ``hi`` None means unbounded."""

    def convert(name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidConfigError(f"param {name!r} must be a number, got {value!r}")
        too_low = value <= lo if lo_open else value < lo
        if too_low or (hi is not None and value >= hi) or math.isnan(value):
            bounds = f"{'>' if lo_open else '>='} {lo}" + (f" and < {hi}" if hi is not None else "")
            raise InvalidConfigError(f"param {name!r} must be {bounds}, got {value!r}")
        return float(value)

    return convert


def choice(options: Collection[str]) -> Convert[str]:
    def convert(name: str, value: Any) -> str:
        if value not in options:
            raise InvalidConfigError(
                f"param {name!r} must be one of {', '.join(options)}; got {value!r}"
            )
        return str(value)

    return convert


def boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):  # categorical samplers may hand back 0/1
        return bool(value)
    raise InvalidConfigError(f"param {name!r} must be true or false, got {value!r}")


activation = choice(tuple(ACTIVATIONS))
dropout_rate = number(0.0, 1.0)


@dataclass(frozen=True)
class OptimizerSettings:
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9  # used by sgd only
    batch_size: int = 128


OPTIMIZER_PARAMS = ("optimizer", "lr", "weight_decay", "momentum", "batch_size")
_OPT = OptimizerSettings()


def parse_optimizer(params: Mapping[str, Any]) -> OptimizerSettings:
    return OptimizerSettings(
        optimizer=get(params, "optimizer", _OPT.optimizer, choice(("adam", "adamw", "sgd"))),
        lr=get(params, "lr", _OPT.lr, number(0.0, lo_open=True)),
        weight_decay=get(params, "weight_decay", _OPT.weight_decay, number(0.0)),
        momentum=get(params, "momentum", _OPT.momentum, number(0.0, 1.0)),
        batch_size=get(params, "batch_size", _OPT.batch_size, integer(1)),
    )


def make_optimizer(
    parameters: Iterable[nn.Parameter], settings: OptimizerSettings
) -> torch.optim.Optimizer:
    if settings.optimizer == "sgd":
        return torch.optim.SGD(
            parameters,
            lr=settings.lr,
            momentum=settings.momentum,
            weight_decay=settings.weight_decay,
        )
    cls = torch.optim.AdamW if settings.optimizer == "adamw" else torch.optim.Adam
    return cls(parameters, lr=settings.lr, weight_decay=settings.weight_decay)


# --------------------------------------------------------------------------- runtime


def pick_device(option: str | None = None) -> torch.device:
    """``option`` forces a device ("cpu", "cuda", "cuda:1"); otherwise CUDA when present."""
    if option:
        device = torch.device(option)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise KubetuneError(f"device {option!r} requested but CUDA is not available")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed every RNG a trial touches; the returned generator drives mini-batch shuffling."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def standardizer(
    X: np.ndarray, image_shape: tuple[int, ...] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean/std of ``X``; per-channel for images (keeps convolutions meaningful)."""
    X = X.astype(np.float64)
    if image_shape is None:
        mean, std = X.mean(axis=0), X.std(axis=0)
    else:
        channels = image_shape[0]
        per_channel = X.reshape(len(X), channels, -1)
        repeat = per_channel.shape[2]
        mean = np.repeat(per_channel.mean(axis=(0, 2)), repeat)
        std = np.repeat(per_channel.std(axis=(0, 2)), repeat)
    std[~(std > 1e-12)] = 1.0  # constant features (e.g. blank image borders) stay at 0
    return mean.astype(np.float32), std.astype(np.float32)


def fill_values(X: np.ndarray) -> np.ndarray:
    """Per-feature median of the non-missing values (0 where none): what NaN becomes."""
    fill = np.zeros(X.shape[1], dtype=np.float32)
    missing = np.isnan(X)
    for j in np.flatnonzero(missing.any(axis=0)):
        seen = X[~missing[:, j], j]
        fill[j] = np.median(seen) if len(seen) else 0.0
    # Columns without NaN need no fill, but a real median keeps the record meaningful.
    complete = ~missing.any(axis=0)
    if complete.any() and len(X):
        fill[complete] = np.median(X[:, complete], axis=0)
    return fill


def run_epochs(
    net: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    batch_size: int,
    generator: torch.Generator,
    evaluate: Callable[[], float] | None = None,
    reporter: Reporter | None = None,
    first_epoch: int = 1,
) -> int:
    """Mini-batch training; after each epoch report ``evaluate()`` at step = epoch (from
    ``first_epoch``: a resumed trial goes on counting where its checkpoint stopped).

    Returns the number of epochs run. ``optuna.TrialPruned`` from the reporter propagates.
    """
    n = X.shape[0]
    for epoch in range(first_epoch, first_epoch + epochs):
        net.train()
        order = torch.randperm(n, generator=generator).to(X.device)
        total = torch.zeros((), device=X.device)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            if len(idx) < 2 < n:
                continue  # BatchNorm cannot train on one row; it is skipped this epoch only
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net(X[idx]), y[idx])
            loss.backward()
            optimizer.step()
            total += loss.detach()  # stays on device: one sync per epoch, not per batch
        if not math.isfinite(float(total)):
            raise FloatingPointError(f"loss became NaN at epoch {epoch}")
        if evaluate is not None and reporter is not None:
            reporter.report(epoch, evaluate())
    return epochs


# --------------------------------------------------------------------------- model


class TorchModel(TrainedModel):
    """A trained network plus the architecture dict that rebuilds it and its scaler stats."""

    def __init__(self, net: nn.Module, architecture: dict[str, Any], device: torch.device):
        self.net = net.to(device).eval()
        self.architecture = architecture
        self.device = device
        self._mean = torch.tensor(architecture["x_mean"], dtype=torch.float32, device=device)
        self._std = torch.tensor(architecture["x_std"], dtype=torch.float32, device=device)
        # set by fit_network: what a checkpoint keeps so training can go on exactly
        self.training_state: TrainingState | None = None

    @property
    def task(self) -> str:
        return str(self.architecture["task"])

    def inputs(self, X: np.ndarray) -> torch.Tensor:
        """Standardized inputs on the model's device; missing values imputed."""
        X = np.asarray(X, dtype=np.float32)
        fill = self.architecture.get("x_fill")  # absent in models stored before imputation
        if fill is not None and np.isnan(X).any():
            X = np.where(np.isnan(X), np.asarray(fill, dtype=np.float32), X)
        X_t = torch.as_tensor(X, device=self.device)
        return (X_t - self._mean) / self._std

    def outputs(self, X_t: torch.Tensor) -> torch.Tensor:
        """Raw network outputs (logits, or the standardized target) for standardized inputs."""
        self.net.eval()
        with torch.inference_mode():
            parts = [self.net(X_t[i : i + _EVAL_CHUNK]) for i in range(0, len(X_t), _EVAL_CHUNK)]
        return torch.cat(parts) if parts else self.net(X_t)

    def decode(self, out: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        """(predictions, probabilities or None) from raw outputs."""
        if self.task == "classification":
            proba = torch.softmax(out.float(), dim=1)
            return proba.argmax(dim=1).cpu().numpy(), proba.cpu().numpy()
        arch = self.architecture
        values = out.float().reshape(-1) * arch["y_std"] + arch["y_mean"]
        return values.cpu().numpy().astype(np.float32), None

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.decode(self.outputs(self.inputs(X)))[0]

    def predict_proba(self, X: np.ndarray) -> np.ndarray | None:
        if self.task != "classification":
            return None
        return self.decode(self.outputs(self.inputs(X)))[1]

    def save(self, directory: Path) -> list[Path]:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        weights, arch = directory / WEIGHTS_FILE, directory / ARCHITECTURE_FILE
        state = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        save_file(state, str(weights), metadata={"kind": str(self.architecture["kind"])})
        arch.write_text(json.dumps(self.architecture, indent=1) + "\n")
        return [weights, arch]

    def save_training_state(self, directory: Path) -> list[Path]:
        if self.training_state is None:  # a loaded model: nothing trained it here
            return []
        return [self.training_state.save(Path(directory))]


def set_threads(threads: Any) -> None:
    """CPU threads for this process's torch ops (option ``threads``, default 1).

    The small models searched here train several times faster on one thread than on two
    contending ones, and parallel trials already use the other cores.
    """
    count = 1 if threads is None else threads
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InvalidConfigError(
            f"trainer option threads must be a positive integer, got {count!r}"
        )
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)


def fit_network(
    *,
    architecture: dict[str, Any],
    build: Callable[[dict[str, Any]], nn.Module],
    settings: OptimizerSettings,
    data: Dataset,
    budget: int | None,
    seed: int,
    reporter: Reporter,
    metric: str,
    final: bool,
    options: Mapping[str, Any],
    image_shape: tuple[int, int, int] | None = None,
    init: Callable[[nn.Module], None] | None = None,
    trained: int = 0,
    state_from: Path | None = None,
    exact_resume: bool = False,
) -> TorchModel:
    """Train ``build(architecture)`` on ``data``; ``architecture`` is completed in place with
    the data-dependent entries (dims, task, scaler stats, class labels). ``init``, when
    given, sets the built network's starting weights (weight inheritance, a resume).
    ``trained``: epochs the starting weights already had (a resumed trial trains only
    ``budget - trained`` more and reports steps ``trained + 1 .. budget``).
    ``state_from``: the checkpoint folder ``init`` reads, whose optimizer state is loaded
    too wherever every parameter's shape still matches (see :mod:`training_state`);
    ``exact_resume`` restores its random generators as well (the same trial going on)."""
    epochs = budget if budget is not None else options.get("epochs", DEFAULT_EPOCHS)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise InvalidConfigError(f"the epoch budget must be a positive integer, got {epochs!r}")
    if not 0 <= trained < epochs:
        raise ValueError(f"cannot resume at epoch {trained} of a budget of {epochs}")
    task = data.task
    if not final:
        metric = check_metric(task, metric)  # fail before training, not after the first epoch
    device = pick_device(options.get("device"))
    set_threads(options.get("threads"))
    generator = seed_everything(seed)

    X, y = data.X_train, data.y_train
    if final:
        X, y = np.concatenate([X, data.X_val]), np.concatenate([y, data.y_val])
    x_fill = fill_values(X)
    x_mean, x_std = standardizer(np.where(np.isnan(X), x_fill, X), image_shape)
    classes = 0
    if task == "classification":
        classes = count_classes(data.class_labels, data.y_train, data.y_val, data.y_test)
    architecture.update(
        format_version=FORMAT_VERSION,
        task=task,
        input_dim=int(X.shape[1]),
        output_dim=classes if task == "classification" else 1,
        x_mean=x_mean.tolist(),
        x_std=x_std.tolist(),
        x_fill=x_fill.tolist(),
        class_labels=list(data.class_labels),
    )
    if task == "regression":
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        y_std = float(y.std()) or 1.0
        architecture.update(y_mean=float(y.mean()), y_std=y_std)

    net = build(architecture)
    if init is not None:
        init(net)
    net = net.to(device)
    model = TorchModel(net, architecture, device)
    X_t = model.inputs(X)
    if task == "classification":
        y_t = torch.as_tensor(np.asarray(y, dtype=np.int64), device=device)
        loss_fn: nn.Module = nn.CrossEntropyLoss()
    else:
        y_scaled = (y - architecture["y_mean"]) / architecture["y_std"]
        y_t = torch.as_tensor(y_scaled.astype(np.float32), device=device).reshape(-1, 1)
        loss_fn = nn.MSELoss()

    evaluate = None
    if not final:
        X_val = model.inputs(data.X_val)

        def evaluate() -> float:
            pred, proba = model.decode(model.outputs(X_val))
            return compute_metric(task, metric, data.y_val, pred, proba, classes or None)

    state = TrainingState(make_optimizer(net.parameters(), settings), generator)
    if state_from is not None:
        skipped = state.restore(state_from, generators=exact_resume)
        if skipped is not None:
            _log.info("fresh optimizer, not the one of %s: %s", state_from, skipped)
    model.training_state = state
    run_epochs(
        net,
        X_t,
        y_t,
        loss_fn,
        state.optimizer,
        epochs=epochs - trained,
        batch_size=settings.batch_size,
        generator=generator,
        evaluate=evaluate,
        reporter=None if final else reporter,
        first_epoch=trained + 1,
    )
    net.eval()
    return model


def load_network(
    directory: Path,
    kind: str,
    build: Callable[[dict[str, Any]], nn.Module],
    device: torch.device,
) -> TorchModel:
    """Rebuild a network from ``architecture.json`` and load its safetensors weights."""
    directory = Path(directory)
    weights, arch_path = directory / WEIGHTS_FILE, directory / ARCHITECTURE_FILE
    for path in (weights, arch_path):
        if not path.is_file():
            raise RepositoryError(f"{path} is missing: not a saved {kind} model")
    try:
        architecture = json.loads(arch_path.read_text())
    except json.JSONDecodeError as exc:
        raise RepositoryError(f"{arch_path} is not valid JSON: {exc}") from exc
    if architecture.get("kind") != kind:
        raise RepositoryError(
            f"{directory} holds a {architecture.get('kind')!r} model, not a {kind!r} model"
        )
    try:
        net = build(architecture)
    except (KeyError, TypeError, ValueError) as exc:
        raise RepositoryError(f"{arch_path} does not describe a valid {kind}: {exc!r}") from exc
    try:
        net.load_state_dict(load_file(str(weights), device="cpu"))
    except (RuntimeError, OSError) as exc:  # shape/key mismatch or a corrupt file
        raise RepositoryError(f"cannot load weights from {weights}: {exc}") from exc
    return TorchModel(net, architecture, device)


def inherit_matching(
    parent: Path, kind: str, build: Callable[[dict[str, Any]], nn.Module]
) -> Callable[[nn.Module], None]:
    """An ``init`` for :func:`fit_network` that copies from the saved network in ``parent``
    every parameter and buffer whose name and shape match this one's, and leaves the rest
    freshly initialised: weight inheritance "wherever the shapes allow" (a pbt member of
    the same architecture takes all of them). A parent that cannot be read is a cold start,
    logged, not a failed trial."""

    def init(net: nn.Module) -> None:
        try:
            source = load_network(parent, kind, build, pick_device("cpu")).net.state_dict()
        except RepositoryError as exc:
            _log.warning("not inheriting weights from %s: %s", parent, exc)
            return
        own = net.state_dict()
        matching = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
        net.load_state_dict(matching, strict=False)
        _log.info("inherited %d of %d tensors from %s", len(matching), len(own), parent)

    return init


def restore_weights(
    checkpoint: Path, kind: str, build: Callable[[dict[str, Any]], nn.Module]
) -> Callable[[nn.Module], None]:
    """An ``init`` for :func:`fit_network` that starts from the exact weights saved in
    ``checkpoint`` (the same config: a promoted rung or a pbt member going on)."""

    def init(net: nn.Module) -> None:
        source = load_network(checkpoint, kind, build, pick_device("cpu"))
        try:
            net.load_state_dict(source.net.state_dict())
        except RuntimeError as exc:  # another architecture under the same trial number
            raise RepositoryError(
                f"checkpoint {checkpoint} does not fit this config: {exc}"
            ) from exc

    return init
