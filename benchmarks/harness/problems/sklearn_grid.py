"""A bayesmark-style grid: scikit-learn models x data sets bundled with scikit-learn.

Written here (the ``bayesmark`` package does not run on current scikit-learn). The loss is
the cross-validated error: ``1 - accuracy`` for classifiers, ``1 - R^2`` for the regression
data set (diabetes). Models that need scaled inputs get a ``StandardScaler`` in front.
Real training on this machine, single fidelity; the optimum is unknown (the best value any
peer found stands in for it).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from harness.problems.base import Problem

CV_FOLDS = 3
DATASETS = ("digits", "breast_cancer", "wine", "iris", "diabetes")
REGRESSION = frozenset({"diabetes"})


def _f(low: float, high: float, log: bool = False) -> dict[str, Any]:
    return {"type": "float", "low": low, "high": high, "log": log}


def _i(low: int, high: int, log: bool = False) -> dict[str, Any]:
    return {"type": "int", "low": low, "high": high, "log": log}


def _c(*choices: Any) -> dict[str, Any]:
    return {"type": "categorical", "choices": list(choices)}


# model -> its space (the same for classification and regression where the names agree)
SPACES: dict[str, dict[str, dict[str, Any]]] = {
    "knn": {"n_neighbors": _i(1, 30), "p": _i(1, 2), "weights": _c("uniform", "distance")},
    "svm": {"C": _f(1e-2, 1e3, log=True), "gamma": _f(1e-4, 1.0, log=True)},
    "dt": {
        "max_depth": _i(1, 20),
        "min_samples_split": _f(0.01, 0.5, log=True),
        "min_samples_leaf": _f(0.001, 0.2, log=True),
        "max_features": _f(0.1, 1.0),
    },
    "rf": {
        "max_depth": _i(1, 20),
        "max_features": _f(0.1, 1.0),
        "min_samples_split": _f(0.01, 0.5, log=True),
        "min_samples_leaf": _f(0.001, 0.2, log=True),
    },
    "mlp": {
        "hidden_layer_sizes": _i(16, 128, log=True),
        "alpha": _f(1e-5, 1e1, log=True),
        "learning_rate_init": _f(1e-4, 1e-1, log=True),
        "batch_size": _i(16, 128, log=True),
    },
    "ada": {"n_estimators": _i(10, 100), "learning_rate": _f(1e-2, 1.0, log=True)},
    "linear": {"C": _f(1e-3, 1e3, log=True), "l1_ratio": _f(0.0, 1.0)},
}
MODELS = tuple(SPACES)


def _estimator(model: str, regression: bool, params: Mapping[str, Any], seed: int) -> Any:
    from sklearn import ensemble, linear_model, neighbors, neural_network, svm, tree
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    p = dict(params)

    def scaled(est: Any) -> Any:
        return make_pipeline(StandardScaler(), est)

    if model == "knn":
        cls = neighbors.KNeighborsRegressor if regression else neighbors.KNeighborsClassifier
        return scaled(cls(**p))
    if model == "svm":
        return scaled(svm.SVR(**p) if regression else svm.SVC(**p))
    if model == "dt":
        cls = tree.DecisionTreeRegressor if regression else tree.DecisionTreeClassifier
        return cls(random_state=seed, **p)
    if model == "rf":
        cls = ensemble.RandomForestRegressor if regression else ensemble.RandomForestClassifier
        return cls(n_estimators=20, random_state=seed, n_jobs=1, **p)
    if model == "mlp":
        cls = neural_network.MLPRegressor if regression else neural_network.MLPClassifier
        if "hidden_layer_sizes" in p:  # one hidden layer of this width
            p["hidden_layer_sizes"] = (int(p["hidden_layer_sizes"]),)
        return scaled(cls(max_iter=60, random_state=seed, **p))
    if model == "ada":
        cls = ensemble.AdaBoostRegressor if regression else ensemble.AdaBoostClassifier
        return cls(random_state=seed, **p)
    if model == "linear":
        c, l1_ratio = float(p.get("C", 1.0)), float(p.get("l1_ratio", 0.5))
        if regression:  # ElasticNet's alpha plays the inverse role of C
            return scaled(linear_model.ElasticNet(alpha=1 / c, l1_ratio=l1_ratio, max_iter=2000))
        return scaled(
            linear_model.LogisticRegression(C=c, l1_ratio=l1_ratio, solver="saga", max_iter=300)
        )
    raise ValueError(f"sklearn model: one of {', '.join(MODELS)} (got {model!r})")


@functools.cache
def _data(dataset: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    loaded = getattr(datasets, f"load_{dataset}")(return_X_y=True)
    return np.asarray(loaded[0]), np.asarray(loaded[1])


class SklearnProblem(Problem):
    family = "sklearn"

    def __init__(self, model: str, dataset: str) -> None:
        if model not in SPACES:
            raise ValueError(f"sklearn model: one of {', '.join(MODELS)} (got {model!r})")
        if dataset not in DATASETS:
            raise ValueError(f"sklearn dataset: one of {', '.join(DATASETS)} (got {dataset!r})")
        self.model, self.dataset = model, dataset
        self.name = f"sklearn-{model}-{dataset}"
        self.regression = dataset in REGRESSION

    @property
    def space(self) -> Mapping[str, Mapping[str, Any]]:
        return SPACES[self.model]

    def estimator(self, params: Mapping[str, Any] | None = None) -> Any:
        """The unfitted estimator (for scikit-learn's own searches, e.g. halving)."""
        return _estimator(self.model, self.regression, params or {}, seed=0)

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        return _data(self.dataset)

    def evaluate(self, params: Mapping[str, Any], budget: int | None = None) -> float:
        from sklearn.model_selection import cross_val_score

        x, y = _data(self.dataset)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings of short MLP/saga runs
            scores = cross_val_score(
                self.estimator(params), x, y, cv=CV_FOLDS, scoring=self.scoring, n_jobs=1
            )
        score = float(np.mean(scores))
        # a diverged regressor scores R^2 << 0: clip, so one blow-up cannot dominate a mean
        return min(1.0 - score, 2.0)

    @property
    def scoring(self) -> str:
        return "r2" if self.regression else "accuracy"
