"""custom: train with your own function, named in ``trainer.options.function``.

Contract
--------
``options["function"]`` is ``"module:function"`` (importable from the worker's ``sys.path``).
kubetune calls it with keyword arguments only::

    fn(params=dict, data=Dataset, budget=int | None, reporter=Reporter, seed=int, final=bool)

plus ``metric=str`` (the validation metric to report) when the function has a ``metric``
parameter or ``**kwargs``. It returns a fitted object with

- ``predict(X) -> ndarray`` (class indices or values), required;
- ``predict_proba(X) -> ndarray``, optional (needed for log_loss / roc_auc);
- ``save(directory) -> list[Path]``, optional: write the model's files, return them.

When ``final`` is False the function reports the validation metric itself, once per budget
step, with ``reporter.report(step, value)``, and lets ``optuna.TrialPruned`` propagate. When
``final`` is True it trains on train + validation and reports nothing. It raises
:class:`kubetune.errors.InvalidConfigError` for a config that cannot work.

A saved model is loadable only when the function's module also defines
``load(directory)`` returning such an object. A model without ``save`` is recorded as not
serialisable (``model.json`` says so) and cannot be loaded.

Checkpoints (optional): a function with a ``resume_from`` parameter gets
``resume_from=Path`` (a local folder holding files an earlier model of this function wrote
with ``save(directory)``) when the trial is to start from those weights instead of from
scratch, else ``resume_from=None``. It then trains ``budget`` more steps from there and
reports steps from 1 as usual. That is what ``strategy: pbt`` (a member goes on from its own
or a better member's checkpoint, with new hyperparameters) and ``inherit: true`` with
``strategy: evolution`` (a child starts from its parent's) need; without the parameter
both are refused or ignored. The folder is another trial's model: the function decides
what of it fits the new params (e.g. only matching shapes). The looping pipeline does not
continue custom models at a higher rung (they train again from scratch).
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from kubetune.core.trial import Reporter
from kubetune.data.dataset import Dataset
from kubetune.errors import KubetuneError, SpecError
from kubetune.trainers.base import StartsFromParent, TrainedModel

KIND = "custom"
META_FILE = "model.json"
RESUME_PARAM = "resume_from"


def _split(spec: Any) -> tuple[str, str]:
    if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
        raise KubetuneError(
            f"trainer option 'function' must look like 'package.module:function', got {spec!r}"
        )
    module, name = spec.split(":")
    return module, name


def _import_module(spec: str) -> ModuleType:
    module, _ = _split(spec)
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise KubetuneError(f"cannot import custom trainer {spec!r}: {exc}") from exc


def resolve_function(spec: Any) -> Any:
    module = _import_module(spec)
    fn = getattr(module, _split(spec)[1], None)
    if not callable(fn):
        raise KubetuneError(f"cannot import custom trainer {spec!r}: no such function")
    return fn


def _accepts_metric(fn: Any) -> bool:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins and some C callables have no signature
        return False
    return any(p.name == "metric" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _accepts_resume(fn: Any) -> bool:
    # Named explicitly (not **kwargs): a function must mean to start from a checkpoint.
    try:
        return RESUME_PARAM in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


class CustomModel(TrainedModel):
    """The object a custom function returned, seen through the TrainedModel interface."""

    def __init__(self, model: Any, function: str) -> None:
        if not callable(getattr(model, "predict", None)):
            raise KubetuneError(
                f"custom trainer {function!r} returned {type(model).__name__}, "
                "which has no predict(X) method"
            )
        self.model = model
        self.function = function

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict(X))

    def predict_proba(self, X: np.ndarray) -> np.ndarray | None:
        method = getattr(self.model, "predict_proba", None)
        return np.asarray(method(X)) if callable(method) else None

    def save(self, directory: Path) -> list[Path]:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        method = getattr(self.model, "save", None)
        if callable(method):
            files = method(directory)
            if files is None:  # tolerate a save() that forgets to return its files
                return sorted(p for p in directory.rglob("*") if p.is_file())
            return [p if p.is_absolute() else directory / p for p in map(Path, files)]
        meta = directory / META_FILE
        meta.write_text(
            json.dumps(
                {
                    "kind": KIND,
                    "function": self.function,
                    "serialisable": False,
                    "reason": f"{type(self.model).__name__} has no save(directory) method",
                },
                indent=1,
            )
            + "\n"
        )
        return [meta]


class CustomTrainer(StartsFromParent):
    kind = KIND
    known_options = frozenset({"function", "inherit"})

    @property
    def can_resume(self) -> bool:
        try:
            return _accepts_resume(resolve_function(self.function))
        except KubetuneError:
            return False

    @property
    def inherits_weights(self) -> bool:
        inherit = self.options.get("inherit", False)
        if not isinstance(inherit, bool):
            raise KubetuneError(f"trainer option inherit must be true or false, got {inherit!r}")
        return inherit and self.can_resume

    @property
    def function(self) -> str:
        spec = self.options.get("function")
        _split(spec)
        return str(spec)

    def check(self, *, fidelity_param: str | None, base_dir: Path) -> None:
        # ``function: my_module:train`` finds my_module.py next to the spec, as a user expects;
        # local workers inherit this sys.path from the controller.
        if str(base_dir) not in sys.path:
            sys.path.insert(0, str(base_dir))
        fn = resolve_function(self.options.get("function"))
        if self.options.get("inherit") and not _accepts_resume(fn):
            raise SpecError(
                f"trainer.inherit: {self.options['function']} has no {RESUME_PARAM} parameter,"
                " so it cannot start from a parent's checkpoint (see kubetune.trainers.custom)"
            )

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
    ) -> CustomModel:
        fn = resolve_function(self.function)
        kwargs: dict[str, Any] = {
            "params": params,
            "data": data,
            "budget": budget,
            "reporter": reporter,
            "seed": seed,
            "final": final,
        }
        if _accepts_metric(fn):
            kwargs["metric"] = metric
        if _accepts_resume(fn):
            kwargs[RESUME_PARAM] = parent
        return CustomModel(fn(**kwargs), self.function)

    def load(self, directory: Path) -> CustomModel:
        directory = Path(directory)
        meta = directory / META_FILE
        if meta.is_file():
            try:
                serialisable = json.loads(meta.read_text()).get("serialisable", True)
            except (json.JSONDecodeError, AttributeError):
                serialisable = True  # a model.json of the user's own format
            if serialisable is False:
                raise KubetuneError(
                    f"the custom model in {directory} was not serialisable (no save method) "
                    "and cannot be loaded"
                )
        module = _import_module(self.function)
        load = getattr(module, "load", None)
        if not callable(load):
            raise KubetuneError(
                f"custom models are loadable only when the trainer's module defines "
                f"load(directory); {module.__name__} does not"
            )
        return CustomModel(load(directory), self.function)
