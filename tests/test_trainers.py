"""Built-in trainers on small real data sets (digits, a synthetic regression), all offline."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.datasets import load_digits, make_regression

from kubetune.data.dataset import Dataset
from kubetune.errors import DataError, InvalidConfigError, KubetuneError, RepositoryError
from kubetune.trainers import TRAINER_KINDS, NullReporter, get_trainer

FAST_MLP = {"n_layers": 2, "units": [64, 64], "batch_size": 32, "lr": 3e-3}


class Recorder:
    """Reporter that remembers every report and can prune at a given step."""

    def __init__(self, prune_at: int | None = None) -> None:
        self.reports: list[tuple[int, float]] = []
        self.prune_at = prune_at

    def report(self, step: int, value: float) -> None:
        self.reports.append((step, value))
        if step == self.prune_at:
            raise optuna.TrialPruned(f"pruned at {step}")

    @property
    def steps(self) -> list[int]:
        return [step for step, _ in self.reports]


def _split(name: str, task: Any, X: np.ndarray, y: np.ndarray, **kw: Any) -> Dataset:
    order = np.random.default_rng(0).permutation(len(X))
    n_train, n_val = int(0.6 * len(X)), int(0.2 * len(X))
    tr, va, te = np.split(order, [n_train, n_train + n_val])
    return Dataset(
        name=name,
        task=task,
        X_train=X[tr],
        y_train=y[tr],
        X_val=X[va],
        y_val=y[va],
        X_test=X[te],
        y_test=y[te],
        feature_names=tuple(f"x{i}" for i in range(X.shape[1])),
        **kw,
    )


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    # Tests share a 2-core machine; one intra-op thread is faster than fighting over two.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits() -> Dataset:
    X, y = load_digits(return_X_y=True)
    return _split(
        "digits",
        "classification",
        X.astype(np.float32),
        y.astype(np.int64),
        class_labels=tuple(str(i) for i in range(10)),
        image_shape=(1, 8, 8),
    )


@pytest.fixture(scope="module")
def regression() -> Dataset:
    X, y = make_regression(n_samples=600, n_features=8, noise=5.0, random_state=0)
    return _split("reg", "regression", X.astype(np.float32), (y * 10 + 300).astype(np.float32))


def _accuracy(model: Any, data: Dataset) -> float:
    return float(np.mean(model.predict(data.X_test) == data.y_test))


# --------------------------------------------------------------------------- registry


def test_registry_kinds_and_unknown_kind() -> None:
    assert set(TRAINER_KINDS) == {"torch-mlp", "torch-cnn", "sklearn", "custom"}
    for kind in TRAINER_KINDS:
        assert get_trainer(kind, {}).kind == kind
    with pytest.raises(KubetuneError, match=r"'xgboost'.*torch-mlp, torch-cnn, sklearn, custom"):
        get_trainer("xgboost", None)


def test_sklearn_runs_do_not_import_torch() -> None:
    code = textwrap.dedent(
        """
        import sys
        from kubetune.trainers import get_trainer, compute_metrics
        get_trainer("sklearn", {"estimator": "sklearn.linear_model.Ridge"})
        assert "torch" not in sys.modules, "torch was imported"
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --------------------------------------------------------------------------- torch-mlp


def test_mlp_learns_digits_and_reports_every_epoch(digits: Dataset) -> None:
    reporter = Recorder()
    model = get_trainer("torch-mlp").fit(
        FAST_MLP, digits, budget=5, seed=0, reporter=reporter, metric="val_accuracy"
    )
    assert reporter.steps == [1, 2, 3, 4, 5]
    assert reporter.reports[-1][1] > 0.9
    assert _accuracy(model, digits) > 0.9
    proba = model.predict_proba(digits.X_test)
    assert proba is not None and proba.shape == (len(digits.X_test), 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)


def test_mlp_regression_beats_the_mean(regression: Dataset) -> None:
    reporter = Recorder()
    model = get_trainer("torch-mlp").fit(
        {"units": 64, "lr": 3e-3, "batch_size": 32},
        regression,
        budget=8,
        seed=0,
        reporter=reporter,
        metric="rmse",
    )
    baseline = float(np.sqrt(np.mean((regression.y_val - regression.y_train.mean()) ** 2)))
    assert reporter.steps == list(range(1, 9))
    assert reporter.reports[-1][1] < 0.3 * baseline
    pred = model.predict(regression.X_val)
    assert pred.shape == regression.y_val.shape and pred.dtype == np.float32
    assert model.predict_proba(regression.X_val) is None


def test_pruning_stops_training(digits: Dataset) -> None:
    reporter = Recorder(prune_at=2)
    with pytest.raises(optuna.TrialPruned):
        get_trainer("torch-mlp").fit(
            FAST_MLP, digits, budget=10, seed=0, reporter=reporter, metric="log_loss"
        )
    assert reporter.steps == [1, 2]  # no epoch ran after the pruning report


def test_same_seed_same_model(digits: Dataset) -> None:
    params = {**FAST_MLP, "dropout": 0.2, "batch_norm": True, "optimizer": "adamw"}

    def train(seed: int) -> np.ndarray:
        model = get_trainer("torch-mlp").fit(
            params, digits, budget=2, seed=seed, reporter=NullReporter(), metric="accuracy"
        )
        proba = model.predict_proba(digits.X_test)
        assert proba is not None
        return proba

    first = train(3)
    np.testing.assert_array_equal(first, train(3))
    assert not np.array_equal(first, train(4))


def test_mlp_params_scalar_broadcast_and_defaults(digits: Dataset, tmp_path: Path) -> None:
    model = get_trainer("torch-mlp").fit(
        {"n_layers": 3, "units": 16, "activation": ["gelu", "tanh", "leaky_relu"]},
        digits,
        budget=1,
        seed=0,
        reporter=NullReporter(),
        metric="accuracy",
    )
    model.save(tmp_path)
    layers = json.loads((tmp_path / "architecture.json").read_text())["layers"]
    assert [layer["units"] for layer in layers] == [16, 16, 16]
    assert [layer["activation"] for layer in layers] == ["gelu", "tanh", "leaky_relu"]
    assert all(layer["dropout"] == 0.0 and layer["batch_norm"] is False for layer in layers)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"unitz": 64, "lr": 0.01}, "'unitz'"),
        ({"n_layers": 2, "units": [64, 64, 64]}, "'units' has 3 values but there are 2"),
        ({"activation": "swish"}, "'activation' must be one of"),
        ({"dropout": 1.5}, "'dropout'"),
        ({"lr": 0}, "'lr'"),
        ({"units": 12.5}, "'units' must be an integer"),
        ({"optimizer": "lbfgs"}, "'optimizer'"),
    ],
)
def test_mlp_rejects_bad_params(digits: Dataset, params: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidConfigError, match=message):
        get_trainer("torch-mlp").fit(
            params, digits, budget=1, seed=0, reporter=NullReporter(), metric="accuracy"
        )


def test_nan_loss_fails_cleanly(regression: Dataset) -> None:
    X = regression.X_train.copy()
    X[0, 0] = np.inf  # NaN is now imputed; an infinite input still makes the loss NaN
    broken = replace(regression, X_train=X)
    reporter = Recorder()
    with pytest.raises(FloatingPointError, match="loss became NaN at epoch 1"):
        get_trainer("torch-mlp").fit({}, broken, budget=3, seed=0, reporter=reporter, metric="rmse")
    assert reporter.reports == []


def test_final_training_uses_train_and_val_and_reports_nothing(
    regression: Dataset, tmp_path: Path
) -> None:
    reporter = Recorder()
    model = get_trainer("torch-mlp", {"epochs": 2}).fit(
        {"n_layers": 1},
        regression,
        budget=None,
        seed=0,
        reporter=reporter,
        metric="rmse",
        final=True,
    )
    assert reporter.reports == []
    model.save(tmp_path)
    arch = json.loads((tmp_path / "architecture.json").read_text())
    both = np.concatenate([regression.y_train, regression.y_val]).astype(np.float64)
    assert arch["y_mean"] == pytest.approx(both.mean())


def test_mlp_save_load_round_trip(digits: Dataset, tmp_path: Path) -> None:
    trainer = get_trainer("torch-mlp")
    model = trainer.fit(
        {**FAST_MLP, "batch_norm": [True, False], "dropout": [0.1, 0.0]},
        digits,
        budget=2,
        seed=0,
        reporter=NullReporter(),
        metric="accuracy",
    )
    files = model.save(tmp_path)
    assert sorted(p.name for p in files) == ["architecture.json", "model.safetensors"]
    arch = json.loads((tmp_path / "architecture.json").read_text())
    assert arch["class_labels"] == list(digits.class_labels) and arch["input_dim"] == 64
    loaded = get_trainer("torch-mlp").load(tmp_path)
    np.testing.assert_array_equal(loaded.predict(digits.X_test), model.predict(digits.X_test))
    np.testing.assert_array_equal(
        loaded.predict_proba(digits.X_test), model.predict_proba(digits.X_test)
    )


def test_load_refuses_another_kind(digits: Dataset, tmp_path: Path) -> None:
    get_trainer("torch-mlp").fit(
        {"n_layers": 0}, digits, budget=1, seed=0, reporter=NullReporter(), metric="accuracy"
    ).save(tmp_path)
    with pytest.raises(RepositoryError, match="torch-mlp"):
        get_trainer("torch-cnn").load(tmp_path)
    with pytest.raises(RepositoryError, match="missing"):
        get_trainer("torch-mlp").load(tmp_path / "nothing")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_forcing_cuda_without_a_gpu(digits: Dataset) -> None:
    with pytest.raises(KubetuneError, match="CUDA is not available"):
        get_trainer("torch-mlp", {"device": "cuda"}).fit(
            {}, digits, budget=1, seed=0, reporter=NullReporter(), metric="accuracy"
        )


# --------------------------------------------------------------------------- torch-cnn


def test_cnn_learns_and_round_trips(digits: Dataset, tmp_path: Path) -> None:
    params = {
        "n_blocks": 2,
        "channels": [8, 16],
        "kernel_size": [3, 5],
        "batch_norm": True,
        "dropout": 0.1,
        "activation": "silu",
        "batch_size": 32,
        "lr": 3e-3,
    }
    reporter = Recorder()
    model = get_trainer("torch-cnn").fit(
        params, digits, budget=3, seed=0, reporter=reporter, metric="accuracy"
    )
    assert reporter.steps == [1, 2, 3]
    assert reporter.reports[-1][1] > 0.8
    model.save(tmp_path)
    blocks = json.loads((tmp_path / "architecture.json").read_text())["blocks"]
    assert [b["pool"] for b in blocks] == [True, True]  # 8x8 -> 4x4 -> 2x2
    loaded = get_trainer("torch-cnn").load(tmp_path)
    np.testing.assert_array_equal(
        loaded.predict_proba(digits.X_test), model.predict_proba(digits.X_test)
    )


def test_cnn_stops_pooling_when_the_map_is_one_pixel(digits: Dataset, tmp_path: Path) -> None:
    get_trainer("torch-cnn").fit(
        {"n_blocks": 4, "channels": 4},
        digits,
        budget=1,
        seed=0,
        reporter=NullReporter(),
        metric="accuracy",
    ).save(tmp_path)
    blocks = json.loads((tmp_path / "architecture.json").read_text())["blocks"]
    assert [b["pool"] for b in blocks] == [True, True, True, False]


def test_cnn_needs_image_data(regression: Dataset, digits: Dataset) -> None:
    with pytest.raises(DataError, match="image_shape"):
        get_trainer("torch-cnn").fit(
            {}, regression, budget=1, seed=0, reporter=NullReporter(), metric="rmse"
        )
    with pytest.raises(DataError, match="65 values per row"):
        get_trainer("torch-cnn").fit(
            {},
            replace(digits, image_shape=(1, 5, 13)),
            budget=1,
            seed=0,
            reporter=NullReporter(),
            metric="accuracy",
        )
    with pytest.raises(InvalidConfigError, match="'kernel_size' must be 3 or 5"):
        get_trainer("torch-cnn").fit(
            {"kernel_size": 4},
            digits,
            budget=1,
            seed=0,
            reporter=NullReporter(),
            metric="accuracy",
        )


# --------------------------------------------------------------------------- sklearn

HGB = "sklearn.ensemble.HistGradientBoostingClassifier"


def test_sklearn_warm_start_reports_growing_budget(digits: Dataset) -> None:
    trainer = get_trainer(
        "sklearn", {"estimator": HGB, "budget_param": "max_iter", "report_steps": 4}
    )
    reporter = Recorder()
    model = trainer.fit(
        {"max_leaf_nodes": 8}, digits, budget=20, seed=0, reporter=reporter, metric="accuracy"
    )
    assert reporter.steps == [5, 10, 15, 20]
    assert reporter.reports[-1][1] > 0.9
    estimator = model.estimator  # type: ignore[attr-defined]
    assert estimator.n_iter_ == 20  # chunks added up to the budget, not 5+10+15+20
    assert estimator.get_params()["warm_start"] is False  # params left as configured


def test_sklearn_pruning_stops_growth(digits: Dataset) -> None:
    trainer = get_trainer("sklearn", {"estimator": HGB, "budget_param": "max_iter"})
    reporter = Recorder(prune_at=4)
    with pytest.raises(optuna.TrialPruned):
        trainer.fit({}, digits, budget=20, seed=0, reporter=reporter, metric="log_loss")
    assert reporter.steps == [4]


def test_sklearn_n_estimators_budget(digits: Dataset) -> None:
    trainer = get_trainer(
        "sklearn",
        {"estimator": "sklearn.ensemble.RandomForestClassifier", "budget_param": "n_estimators"},
    )
    reporter = Recorder()
    model = trainer.fit(
        {"max_depth": 6}, digits, budget=10, seed=0, reporter=reporter, metric="roc_auc"
    )
    assert reporter.steps == [2, 4, 6, 8, 10]
    assert len(model.estimator.estimators_) == 10  # type: ignore[attr-defined]
    assert model.estimator.random_state == 0  # type: ignore[attr-defined]


def test_sklearn_without_budget_reports_once(regression: Dataset) -> None:
    reporter = Recorder()
    model = get_trainer("sklearn", {"estimator": "sklearn.linear_model.Ridge"}).fit(
        {"alpha": 0.5}, regression, budget=None, seed=0, reporter=reporter, metric="r2"
    )
    assert reporter.steps == [1] and reporter.reports[0][1] > 0.9
    assert model.predict_proba(regression.X_val) is None


@pytest.mark.parametrize(
    ("estimator", "error", "message"),
    [
        ("os.system", KubetuneError, "sklearn\\."),
        ("builtins.eval", KubetuneError, "sklearn\\."),
        ("sklearn.ensemble.NoSuchForest", KubetuneError, "sklearn.ensemble.NoSuchForest"),
        ("sklearn.nosuchmodule.Thing", KubetuneError, "sklearn.nosuchmodule.Thing"),
        ("sklearn.metrics.accuracy_score", KubetuneError, "not a scikit-learn estimator"),
        (None, KubetuneError, "'estimator'"),
    ],
)
def test_sklearn_estimator_path_errors(
    digits: Dataset, estimator: str | None, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        get_trainer("sklearn", {"estimator": estimator}).fit(
            {}, digits, budget=None, seed=0, reporter=NullReporter(), metric="accuracy"
        )


def test_sklearn_bad_params_are_invalid_configs(digits: Dataset, regression: Dataset) -> None:
    trainer = get_trainer("sklearn", {"estimator": HGB})
    with pytest.raises(InvalidConfigError, match="'learning_rat'"):
        trainer.fit(
            {"learning_rat": 0.1},
            digits,
            budget=None,
            seed=0,
            reporter=NullReporter(),
            metric="accuracy",
        )
    with pytest.raises(InvalidConfigError, match="learning_rate"):
        trainer.fit(
            {"learning_rate": -1.0},
            digits,
            budget=None,
            seed=0,
            reporter=NullReporter(),
            metric="accuracy",
        )
    with pytest.raises(InvalidConfigError, match="regression"):
        trainer.fit({}, regression, budget=None, seed=0, reporter=NullReporter(), metric="rmse")


def test_sklearn_save_load_round_trip(digits: Dataset, tmp_path: Path) -> None:
    trainer = get_trainer("sklearn", {"estimator": HGB, "budget_param": "max_iter"})
    model = trainer.fit({}, digits, budget=10, seed=0, reporter=NullReporter(), metric="f1")
    files = model.save(tmp_path)
    assert sorted(p.name for p in files) == ["model.json", "model.skops"]
    assert json.loads((tmp_path / "model.json").read_text())["estimator"] == HGB
    loaded = get_trainer("sklearn").load(tmp_path)  # options are not needed to load
    np.testing.assert_array_equal(loaded.predict(digits.X_test), model.predict(digits.X_test))
    np.testing.assert_array_equal(
        loaded.predict_proba(digits.X_test), model.predict_proba(digits.X_test)
    )


class Doubler(TransformerMixin, BaseEstimator):
    """A class outside the allow-list, as a stored model could smuggle in."""

    def fit(self, X: Any, y: Any = None) -> Doubler:
        return self

    def transform(self, X: Any) -> Any:
        return X * 2


@pytest.mark.parametrize("kind", ["custom class", "builtin function"])
def test_skops_load_refuses_untrusted_types(digits: Dataset, tmp_path: Path, kind: str) -> None:
    import skops.io
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    first = Doubler() if kind == "custom class" else FunctionTransformer(func=eval)
    pipeline = make_pipeline(first, LogisticRegression(max_iter=50))
    skops.io.dump(pipeline, tmp_path / "model.skops")
    (tmp_path / "model.json").write_text(json.dumps({"task": "classification"}))
    expected = "Doubler" if kind == "custom class" else "builtins.eval"
    with pytest.raises(RepositoryError, match=f"refusing to load.*{expected}"):
        get_trainer("sklearn").load(tmp_path)


# --------------------------------------------------------------------------- custom

CUSTOM_MODULE = """
from pathlib import Path

import numpy as np


class Centroids:
    def fit(self, X, y):
        self.centres = np.stack([X[y == k].mean(axis=0) for k in range(int(y.max()) + 1)])
        return self

    def predict(self, X):
        distances = ((X[:, None, :] - self.centres[None]) ** 2).sum(axis=-1)
        return distances.argmin(axis=1)

    def save(self, directory):
        path = Path(directory) / "centres.npy"
        np.save(path, self.centres)
        return [path]


class Unsaveable:
    def predict(self, X):
        return np.zeros(len(X), dtype=np.int64)


CALLS = []


def train(params, data, budget, reporter, seed, final, metric):
    CALLS.append({"params": params, "budget": budget, "seed": seed, "final": final,
                  "metric": metric})
    model = Centroids().fit(data.X_train, data.y_train)
    if not final:
        for step in range(1, (budget or 1) + 1):
            reporter.report(step, float(np.mean(model.predict(data.X_val) == data.y_val)))
    return model


def train_unsaveable(**kwargs):
    return Unsaveable()


def load(directory):
    model = Centroids()
    model.centres = np.load(Path(directory) / "centres.npy")
    return model
"""


@pytest.fixture
def custom_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    src = tmp_path / "src"
    src.mkdir()
    (src / "kt_custom_trainer.py").write_text(CUSTOM_MODULE)
    monkeypatch.syspath_prepend(str(src))
    monkeypatch.delitem(sys.modules, "kt_custom_trainer", raising=False)
    import kt_custom_trainer

    yield kt_custom_trainer
    sys.modules.pop("kt_custom_trainer", None)


def test_custom_trainer_fit_save_load(digits: Dataset, custom_module: Any, tmp_path: Path) -> None:
    trainer = get_trainer("custom", {"function": "kt_custom_trainer:train"})
    reporter = Recorder()
    model = trainer.fit({"k": 1}, digits, budget=3, seed=5, reporter=reporter, metric="accuracy")
    assert custom_module.CALLS == [
        {"params": {"k": 1}, "budget": 3, "seed": 5, "final": False, "metric": "accuracy"}
    ]
    assert reporter.steps == [1, 2, 3]
    assert _accuracy(model, digits) > 0.85
    files = model.save(tmp_path / "model")
    assert [p.name for p in files] == ["centres.npy"]
    loaded = trainer.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict(digits.X_test), model.predict(digits.X_test))
    assert loaded.predict_proba(digits.X_test) is None


def test_custom_model_without_save(digits: Dataset, custom_module: Any, tmp_path: Path) -> None:
    trainer = get_trainer("custom", {"function": "kt_custom_trainer:train_unsaveable"})
    model = trainer.fit({}, digits, budget=None, seed=0, reporter=NullReporter(), metric="f1")
    files = model.save(tmp_path)
    assert [p.name for p in files] == ["model.json"]
    assert json.loads(files[0].read_text())["serialisable"] is False
    with pytest.raises(KubetuneError, match="not serialisable"):
        trainer.load(tmp_path)


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("kt_no_such_module:train", "kt_no_such_module:train"),
        ("kt_custom_trainer:nope", "kt_custom_trainer:nope"),
        ("kt_custom_trainer.train", "module:function"),
    ],
)
def test_custom_function_errors(
    digits: Dataset, custom_module: Any, function: str, message: str
) -> None:
    with pytest.raises(KubetuneError, match=message):
        get_trainer("custom", {"function": function}).fit(
            {}, digits, budget=None, seed=0, reporter=NullReporter(), metric="accuracy"
        )


# --------------------------------------------------------------------------- torch-cnn weights
def _trained_cnn(digits: Dataset, folder: Path, channels: list[int], epochs: int) -> Path:
    model = get_trainer("torch-cnn").fit(
        {"n_blocks": len(channels), "channels": channels, "lr": 3e-3, "batch_size": 32},
        digits,
        budget=epochs,
        seed=0,
        reporter=Recorder(),
        metric="accuracy",
    )
    model.save(folder)
    return folder


def test_cnn_child_inherits_every_layer_whose_shape_matches(
    digits: Dataset, tmp_path: Path
) -> None:
    import torch as t

    from kubetune.trainers.torch_cnn import build_cnn
    from kubetune.trainers.torch_common import inherit_matching, load_network, pick_device

    parent = _trained_cnn(digits, tmp_path / "parent", [8], epochs=1)
    parent_state = load_network(parent, "torch-cnn", build_cnn, pick_device("cpu")).net.state_dict()
    # a deeper child: its first block has the parent's shapes, its second and its head do not
    shape_donor = _trained_cnn(digits, tmp_path / "deeper", [8, 16], epochs=1)
    child = build_cnn(json.loads((shape_donor / "architecture.json").read_text()))
    before = {k: v.clone() for k, v in child.state_dict().items()}
    inherit_matching(parent, "torch-cnn", build_cnn)(child)
    after = child.state_dict()
    copied = [k for k in after if k in parent_state and after[k].shape == parent_state[k].shape]
    assert copied, "no tensor had a matching shape"
    for key in copied:
        assert t.equal(after[key], parent_state[key]), key
    untouched = [k for k in after if k not in copied]
    assert untouched, "the deeper child should keep fresh weights somewhere"
    for key in untouched:
        assert t.equal(after[key], before[key]), key


def test_inherited_cnn_beats_a_cold_start_after_one_epoch(digits: Dataset, tmp_path: Path) -> None:
    parent = _trained_cnn(digits, tmp_path / "parent", [8, 16], epochs=6)
    params = {"n_blocks": 2, "channels": [8, 16], "lr": 1e-3, "batch_size": 32}
    trainer = get_trainer("torch-cnn", {"inherit": True})
    assert trainer.inherits_weights and trainer.can_resume
    fit = {"data": digits, "budget": 1, "seed": 3, "metric": "accuracy"}
    cold, warm = Recorder(), Recorder()
    trainer.fit(params, reporter=cold, **fit)
    trainer.fit_from(parent, params, reporter=warm, **fit)
    assert warm.reports[0][1] > cold.reports[0][1] + 0.05, (warm.reports, cold.reports)
