"""sklearn: any scikit-learn estimator named by import path, stored with skops (no pickle).

Options:

- ``estimator`` (required): e.g. ``sklearn.ensemble.HistGradientBoostingClassifier``; only
  paths under ``sklearn.`` are allowed.
- ``budget_param`` (optional): the constructor param the budget sets (``max_iter``,
  ``n_estimators``). With ``warm_start`` support the estimator is grown in up to
  ``report_steps`` (5) chunks and the validation metric reported after each (step = the
  budget reached) so pruners can stop it early; otherwise one fit and one report.

Params go to the constructor unchanged; ``random_state`` is set to the trial seed when the
estimator accepts it and the params do not set it.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from kubetune.core.trial import Reporter
from kubetune.data.dataset import Dataset
from kubetune.errors import InvalidConfigError, KubetuneError, RepositoryError, SpecError
from kubetune.trainers.base import TrainedModel, Trainer
from kubetune.trainers.metrics import PROBA_METRICS, check_metric, compute_metric, count_classes

KIND = "sklearn"
MODEL_FILE = "model.skops"
META_FILE = "model.json"
DEFAULT_REPORT_STEPS = 5

# Types a stored model may contain. Builtins are listed one by one: a blanket "builtins."
# would admit functions such as builtins.eval (e.g. inside a FunctionTransformer).
_TRUSTED_ROOTS = ("sklearn.", "numpy.", "scipy.")
_TRUSTED_BUILTINS = frozenset(
    f"builtins.{name}"
    for name in (
        "bool",
        "int",
        "float",
        "complex",
        "str",
        "bytes",
        "bytearray",
        "list",
        "tuple",
        "dict",
        "set",
        "frozenset",
        "slice",
        "range",
        "NoneType",
    )
)


def import_estimator(path: Any) -> type:
    if not isinstance(path, str) or not path.startswith("sklearn."):
        raise KubetuneError(
            f"trainer option 'estimator' must be the import path of a scikit-learn class "
            f"(starting with 'sklearn.'), got {path!r}"
        )
    module_name, _, name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise KubetuneError(f"cannot import estimator {path!r}: {exc}") from exc
    from sklearn.base import BaseEstimator

    if not (isinstance(cls, type) and issubclass(cls, BaseEstimator)):
        raise KubetuneError(f"{path!r} is not a scikit-learn estimator class")
    return cls


def constructor_params(cls: type) -> set[str] | None:
    """Names the constructor accepts, or None when it takes ``**kwargs``."""
    names = set()
    for name, param in inspect.signature(cls).parameters.items():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            return None
        if param.kind is not inspect.Parameter.VAR_POSITIONAL:
            names.add(name)
    return names


def _budget_is_cumulative(cls: type, budget_param: str) -> bool:
    """With warm_start, ``n_estimators`` and HistGradientBoosting's ``max_iter`` are totals
    (fit adds the missing trees); elsewhere ``max_iter`` counts iterations per fit call."""
    return budget_param == "n_estimators" or cls.__name__.startswith("HistGradientBoosting")


class SklearnModel(TrainedModel):
    def __init__(self, estimator: Any, meta: dict[str, Any]) -> None:
        self.estimator = estimator
        self.meta = meta

    @property
    def task(self) -> str:
        return str(self.meta["task"])

    def predict(self, X: np.ndarray) -> np.ndarray:
        pred = np.asarray(self.estimator.predict(X))
        return pred.astype(np.int64) if self.task == "classification" else pred.astype(np.float32)

    def predict_proba(self, X: np.ndarray) -> np.ndarray | None:
        if self.task != "classification" or not hasattr(self.estimator, "predict_proba"):
            return None
        proba = np.asarray(self.estimator.predict_proba(X))
        # A class missing from the training split has no column: give it probability 0.
        classes = np.asarray(self.estimator.classes_).astype(np.int64)
        n_classes = max(int(self.meta.get("n_classes") or 0), int(classes.max()) + 1)
        full = np.zeros((len(proba), n_classes), dtype=proba.dtype)
        full[:, classes] = proba
        return full

    def save(self, directory: Path) -> list[Path]:
        import skops.io

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        model, meta = directory / MODEL_FILE, directory / META_FILE
        skops.io.dump(self.estimator, model)
        meta.write_text(json.dumps(self.meta, indent=1) + "\n")
        return [model, meta]


class SklearnTrainer(Trainer):
    kind = KIND

    known_options = frozenset({"estimator", "budget_param", "report_steps"})

    def check_data(self, data: Dataset, param_names: Collection[str]) -> None:
        try:
            cls = import_estimator(self.options.get("estimator"))
        except KubetuneError as exc:
            raise SpecError(f"trainer.estimator: {exc}") from None
        try:
            self._check_task(cls(), data.task, cls.__name__)
        except InvalidConfigError as exc:
            raise SpecError(
                f"trainer.estimator: {exc} (the data's task is {data.task}; pick a"
                f" {'classifier' if data.task == 'classification' else 'regressor'})"
            ) from None
        except TypeError:
            pass  # needs constructor arguments: judged when the first trial builds it
        accepted = constructor_params(cls)
        unknown = sorted(set(param_names) - (accepted or set(param_names)))
        if unknown:
            valid = ", ".join(sorted(accepted or ()))
            raise SpecError(
                f"search_space.{unknown[0]}: {cls.__name__} does not accept param(s)"
                f" {', '.join(map(repr, unknown))}; valid params: {valid}"
            )

    def check(self, *, fidelity_param: str | None, base_dir: Path) -> None:
        # Without it the budget the scheduler hands out would change nothing.
        if fidelity_param and not self.options.get("budget_param"):
            raise SpecError(
                f"trainer.budget_param: required with a fidelity ({fidelity_param}); name the"
                " estimator parameter the budget sets, e.g. max_iter or n_estimators"
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
    ) -> SklearnModel:
        cls = import_estimator(self.options.get("estimator"))
        path = str(self.options["estimator"])
        if not final:
            metric = check_metric(data.task, metric)
        budget_param = self.options.get("budget_param")
        estimator = self._construct(cls, params, seed, budget_param, budget)
        self._check_task(estimator, data.task, path)
        n_classes = 0
        if data.task == "classification":
            n_classes = count_classes(data.class_labels, data.y_train, data.y_val, data.y_test)
        meta = {
            "format_version": 1,
            "kind": KIND,
            "estimator": path,
            "task": data.task,
            "class_labels": list(data.class_labels),
            "n_classes": n_classes,
        }
        model = SklearnModel(estimator, meta)

        if final:
            X = np.concatenate([data.X_train, data.X_val])
            y = np.concatenate([data.y_train, data.y_val])
            _fit(estimator, X, y, path)
            return model

        def score() -> float:
            proba = model.predict_proba(data.X_val) if metric in PROBA_METRICS else None
            pred = model.predict(data.X_val)
            return compute_metric(data.task, metric, data.y_val, pred, proba, n_classes)

        total = estimator.get_params().get(budget_param) if budget_param else None
        accepted = constructor_params(cls)
        if (
            isinstance(total, int)
            and total >= 1
            and accepted is not None
            and "warm_start" in accepted
        ):
            self._fit_in_chunks(estimator, data, total, str(budget_param), score, reporter, path)
        else:
            _fit(estimator, data.X_train, data.y_train, path)
            reporter.report(total if isinstance(total, int) and total >= 1 else 1, score())
        return model

    def _construct(
        self,
        cls: type,
        params: Mapping[str, Any],
        seed: int,
        budget_param: str | None,
        budget: int | None,
    ) -> Any:
        kwargs = dict(params)
        accepted = constructor_params(cls)
        if accepted is not None:
            unknown = sorted(set(kwargs) - accepted)
            if unknown:
                raise InvalidConfigError(
                    f"{cls.__name__} does not accept param(s) {', '.join(map(repr, unknown))}; "
                    f"valid params: {', '.join(sorted(accepted))}"
                )
            if budget_param and budget_param not in accepted:
                raise KubetuneError(
                    f"budget_param {budget_param!r} is not a param of {cls.__name__}"
                )
            if "random_state" in accepted:
                kwargs.setdefault("random_state", seed)
        if budget_param and budget is not None:
            kwargs[budget_param] = budget
        try:
            return cls(**kwargs)
        except TypeError as exc:  # e.g. a required constructor argument is missing
            raise InvalidConfigError(f"cannot construct {cls.__name__}: {exc}") from exc

    @staticmethod
    def _check_task(estimator: Any, task: str, path: str) -> None:
        from sklearn.base import is_classifier, is_regressor

        if (task == "classification" and is_regressor(estimator)) or (
            task == "regression" and is_classifier(estimator)
        ):
            raise InvalidConfigError(f"{path} does not fit a {task} task")

    def _fit_in_chunks(
        self,
        estimator: Any,
        data: Dataset,
        total: int,
        budget_param: str,
        score: Callable[[], float],
        reporter: Reporter,
        path: str,
    ) -> None:
        """Grow a warm-started estimator towards ``total``, reporting after each chunk."""
        n_steps = int(self.options.get("report_steps", DEFAULT_REPORT_STEPS))
        n_steps = max(1, min(n_steps, total))
        steps = sorted({math.ceil(total * i / n_steps) for i in range(1, n_steps + 1)})
        cumulative = _budget_is_cumulative(type(estimator), budget_param)
        warm_start = estimator.get_params()["warm_start"]
        estimator.set_params(warm_start=True)
        done = 0
        for step in steps:
            estimator.set_params(**{budget_param: step if cumulative else step - done})
            _fit(estimator, data.X_train, data.y_train, path)
            done = step
            reporter.report(step, score())
        # Leave the params as configured, so the stored model describes the real config.
        estimator.set_params(warm_start=warm_start, **{budget_param: total})

    def load(self, directory: Path) -> SklearnModel:
        import skops.io

        directory = Path(directory)
        model, meta_path = directory / MODEL_FILE, directory / META_FILE
        for path in (model, meta_path):
            if not path.is_file():
                raise RepositoryError(f"{path} is missing: not a saved {KIND} model")
        meta = json.loads(meta_path.read_text())
        untrusted = skops.io.get_untrusted_types(file=model)
        refused = [t for t in untrusted if not _trusted(t)]
        if refused:
            raise RepositoryError(
                f"refusing to load {model}: it contains types outside the scikit-learn/numpy/"
                f"scipy allow-list: {', '.join(refused)}"
            )
        return SklearnModel(skops.io.load(model, trusted=untrusted), meta)


def _trusted(type_name: str) -> bool:
    return type_name.startswith(_TRUSTED_ROOTS) or type_name in _TRUSTED_BUILTINS


def _fit(estimator: Any, X: np.ndarray, y: np.ndarray, path: str) -> None:
    try:
        estimator.fit(X, y)
    except ValueError as exc:
        # Includes sklearn's InvalidParameterError and incompatible param combinations
        # (e.g. a penalty the solver does not support): the config cannot work.
        raise InvalidConfigError(f"{path} cannot be fitted with these params: {exc}") from exc
