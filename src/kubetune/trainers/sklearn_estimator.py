"""sklearn: any scikit-learn estimator named by import path, stored with skops (no pickle).

Options:

- ``estimator`` (required): e.g. ``sklearn.ensemble.HistGradientBoostingClassifier``; only
  paths under ``sklearn.`` are allowed.
- ``budget_param`` (optional): the constructor param the budget sets (``max_iter``,
  ``n_estimators``). With ``warm_start`` support the estimator is grown in up to
  ``report_steps`` (5) chunks and the validation metric reported after each (step = the
  budget reached) so pruners can stop it early; otherwise one fit and one report.

- ``preprocessing`` (optional): ``{scale: auto|true|false, impute: auto|true|false}``.
  ``scale`` puts a StandardScaler before the estimator; ``auto`` scales for linear models,
  SVMs, neighbours, neural networks, Gaussian processes and kernel ridge, not for trees and
  ensembles. ``impute`` replaces missing numbers by the training median; ``auto`` imputes
  unless the estimator takes NaN itself (e.g. HistGradientBoosting*). Both are stored with
  the estimator as one skops ``Pipeline``.

Params go to the constructor unchanged; ``random_state`` is set to the trial seed when the
estimator accepts it and the params do not set it. Features reach the estimator as float64.
``ConvergenceWarning``s during fitting are counted (``convergence_warnings``) and reported
once per fit on stderr.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import sys
import warnings
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from kubetune.core.trial import Reporter
from kubetune.data.dataset import Dataset
from kubetune.data.raw import quoted
from kubetune.errors import InvalidConfigError, KubetuneError, RepositoryError, SpecError
from kubetune.trainers.base import TrainedModel, Trainer
from kubetune.trainers.metrics import PROBA_METRICS, check_metric, compute_metric, count_classes

KIND = "sklearn"
MODEL_FILE = "model.skops"
META_FILE = "model.json"
DEFAULT_REPORT_STEPS = 5

# Estimators whose result depends on the features' scale (distances, penalties, gradients).
_SCALE_SENSITIVE = (
    "sklearn.linear_model",
    "sklearn.svm",
    "sklearn.neighbors",
    "sklearn.neural_network",
    "sklearn.gaussian_process",
    "sklearn.kernel_ridge",
)
_SWITCH = {"auto": None, True: True, False: False, "true": True, "false": False}

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
    """``estimator`` is the scikit-learn estimator; ``pipeline`` the object that predicts
    (the estimator itself, or a Pipeline of imputer/scaler and the estimator)."""

    def __init__(self, pipeline: Any, meta: dict[str, Any]) -> None:
        self.pipeline = pipeline
        steps = getattr(pipeline, "steps", None)
        self.estimator = steps[-1][1] if steps else pipeline
        self.meta = meta
        self.convergence_warnings = 0

    @property
    def task(self) -> str:
        return str(self.meta["task"])

    def predict(self, X: np.ndarray) -> np.ndarray:
        pred = np.asarray(self.pipeline.predict(np.asarray(X, dtype=np.float64)))
        return pred.astype(np.int64) if self.task == "classification" else pred.astype(np.float32)

    def predict_proba(self, X: np.ndarray) -> np.ndarray | None:
        if self.task != "classification" or not hasattr(self.estimator, "predict_proba"):
            return None
        proba = np.asarray(self.pipeline.predict_proba(np.asarray(X, dtype=np.float64)))
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
        skops.io.dump(self.pipeline, model)
        meta.write_text(json.dumps(self.meta, indent=1) + "\n")
        return [model, meta]


class SklearnTrainer(Trainer):
    kind = KIND

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        _preprocessing_options(self.options)  # a typo fails the run, not every trial

    known_options = frozenset({"estimator", "budget_param", "report_steps", "preprocessing"})

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
                f" {quoted(unknown)}; valid params: {valid}"
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
        X_train, y_train = data.X_train, data.y_train
        if final:
            X_train = np.concatenate([data.X_train, data.X_val])
            y_train = np.concatenate([data.y_train, data.y_val])
        # Imputer and scaler are fitted once; the estimator then trains (maybe in chunks) on
        # their output, and all three are stored as one Pipeline.
        steps = self._preprocessing_steps(estimator, path)
        X_fit = np.asarray(X_train, dtype=np.float64)
        for _, step in steps:
            X_fit = step.fit_transform(X_fit)
        meta["input_handling"] = {
            "missing_numbers": "median-imputed" if "impute" in dict(steps) else "NaN to estimator",
            "scaled": "scale" in dict(steps),
        }
        model = SklearnModel(_pipeline(steps, estimator), meta)
        fitter = _Fitter(path)

        if final:
            fitter.fit(estimator, X_fit, y_train)
            model.convergence_warnings = fitter.report()
            return model

        def score() -> float:
            proba = model.predict_proba(data.X_val) if metric in PROBA_METRICS else None
            pred = model.predict(data.X_val)
            return compute_metric(data.task, metric, data.y_val, pred, proba, n_classes)

        total = estimator.get_params().get(budget_param) if budget_param else None
        accepted = constructor_params(cls)
        try:
            if (
                isinstance(total, int)
                and total >= 1
                and accepted is not None
                and "warm_start" in accepted
            ):
                self._fit_in_chunks(
                    estimator, X_fit, y_train, total, str(budget_param), score, reporter, fitter
                )
            else:
                fitter.fit(estimator, X_fit, y_train)
                reporter.report(total if isinstance(total, int) and total >= 1 else 1, score())
        finally:
            model.convergence_warnings = fitter.report()
        return model

    def _preprocessing_steps(self, estimator: Any, path: str) -> list[tuple[str, Any]]:
        from sklearn.impute import SimpleImputer
        from sklearn.preprocessing import StandardScaler

        scale, impute = _preprocessing_options(self.options)
        if scale is None:
            scale = path.startswith(_SCALE_SENSITIVE)
        if impute is None:
            impute = not _allows_nan(estimator)
        steps: list[tuple[str, Any]] = []
        if impute:
            # keep_empty_features: a column with no value in training stays (as 0), so the
            # stored feature layout and the estimator's input keep the same width.
            steps.append(("impute", SimpleImputer(strategy="median", keep_empty_features=True)))
        if scale:
            steps.append(("scale", StandardScaler()))
        return steps

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
        X: np.ndarray,
        y: np.ndarray,
        total: int,
        budget_param: str,
        score: Callable[[], float],
        reporter: Reporter,
        fitter: _Fitter,
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
            fitter.fit(estimator, X, y)
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


def _preprocessing_options(options: Mapping[str, Any]) -> tuple[bool | None, bool | None]:
    """(scale, impute) from the ``preprocessing`` option; None means auto."""
    section = options.get("preprocessing") or {}
    if not isinstance(section, dict) or set(section) - {"scale", "impute"}:
        raise InvalidConfigError(
            "trainer option preprocessing must be a mapping with keys scale and/or impute"
            f" (each auto, true or false); got {section!r}"
        )
    return _switch(section, "scale"), _switch(section, "impute")


def _switch(options: Mapping[str, Any], key: str) -> bool | None:
    value = options.get(key, "auto")
    if isinstance(value, str):
        value = value.lower()
    if not isinstance(value, bool | str) or value not in _SWITCH:
        raise InvalidConfigError(
            f"trainer option preprocessing.{key} must be auto, true or false; got {value!r}"
        )
    return _SWITCH[value]


def _allows_nan(estimator: Any) -> bool:
    """Whether the estimator takes NaN features itself (scikit-learn's input tags)."""
    try:
        return bool(estimator.__sklearn_tags__().input_tags.allow_nan)
    except AttributeError:  # scikit-learn < 1.6
        get_tags = getattr(estimator, "_get_tags", None)
        return bool(get_tags().get("allow_nan", False)) if callable(get_tags) else False


def _pipeline(steps: list[tuple[str, Any]], estimator: Any) -> Any:
    if not steps:
        return estimator  # stored as before: a plain estimator
    from sklearn.pipeline import Pipeline

    return Pipeline([*steps, ("model", estimator)])


class _Fitter:
    """Fits an estimator, counting its ConvergenceWarnings instead of letting them scroll by."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.count = 0
        self.first = ""

    def fit(self, estimator: Any, X: np.ndarray, y: np.ndarray) -> None:
        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            try:
                estimator.fit(X, y)
            except ValueError as exc:
                # Includes sklearn's InvalidParameterError and incompatible param combinations
                # (e.g. a penalty the solver does not support): the config cannot work.
                raise InvalidConfigError(
                    f"{self.path} cannot be fitted with these params: {exc}"
                ) from exc
        for item in caught:
            if issubclass(item.category, ConvergenceWarning):
                self.count += 1
                self.first = self.first or str(item.message).strip().splitlines()[0]
            else:  # not ours to swallow
                warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)

    def report(self) -> int:
        """One stderr line per fit with warnings; the count for the trial's record."""
        if self.count:
            print(
                f"warning: {self.path} did not converge ({self.count} ConvergenceWarning"
                f"{'s' if self.count > 1 else ''}): {self.first}",
                file=sys.stderr,
            )
        return self.count
