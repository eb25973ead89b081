"""Data retrieval: sklearn datasets, CSV/Parquet files, splits, fingerprints, and errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from kubetune.data import SKLEARN_DATASETS, Dataset, load_dataset
from kubetune.errors import DataError

# name -> (task, rows, features, classes)
SKLEARN_EXPECTED: dict[str, tuple[str, int, int, int]] = {
    "breast_cancer": ("classification", 569, 30, 2),
    "diabetes": ("regression", 442, 10, 0),
    "digits": ("classification", 1797, 64, 10),
    "iris": ("classification", 150, 4, 3),
    "wine": ("classification", 178, 13, 3),
}


def _mixed_frame(n: int = 60, seed: int = 1) -> pd.DataFrame:
    """Numeric, string-categorical and bool features with a string class target."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x1": rng.normal(size=n),
            "x2": rng.integers(0, 100, size=n),
            "color": np.array(["red", "green", "blue"])[np.arange(n) % 3],
            "flag": np.arange(n) % 2 == 0,
            "label": np.array(["cat", "dog"])[np.arange(n) % 2],
        }
    )


def _write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


def _split_sizes(d: Dataset) -> tuple[int, int, int]:
    return len(d.y_train), len(d.y_val), len(d.y_test)


# --- sklearn datasets ----------------------------------------------------------------------


def test_sklearn_names_are_exported() -> None:
    assert set(SKLEARN_DATASETS) == set(SKLEARN_EXPECTED)


@pytest.mark.parametrize("name", sorted(SKLEARN_EXPECTED))
def test_sklearn_dataset_loads(name: str) -> None:
    task, rows, n_features, n_classes = SKLEARN_EXPECTED[name]
    d = load_dataset(f"sklearn:{name}")
    assert d.name == name
    assert d.task == task
    assert d.n_features == n_features == len(d.feature_names)
    assert d.n_classes == n_classes
    n_train, n_val, n_test = _split_sizes(d)
    assert n_train + n_val + n_test == rows
    assert n_test == round(0.2 * rows) and n_val == round(0.2 * rows)
    for X in (d.X_train, d.X_val, d.X_test):
        assert X.dtype == np.float32 and X.shape[1] == n_features
        assert np.isfinite(X).all()
    expected_y = np.int64 if task == "classification" else np.float32
    assert {d.y_train.dtype, d.y_val.dtype, d.y_test.dtype} == {np.dtype(expected_y)}
    if task == "classification":
        all_y = np.concatenate([d.y_train, d.y_val, d.y_test])
        assert set(np.unique(all_y)) == set(range(n_classes))
    assert len(d.fingerprint) == 64 and int(d.fingerprint, 16) >= 0


@pytest.mark.parametrize("name", ["breast_cancer", "digits", "iris", "wine"])
def test_sklearn_splits_are_stratified(name: str) -> None:
    d = load_dataset(f"sklearn:{name}")
    all_y = np.concatenate([d.y_train, d.y_val, d.y_test])
    overall = np.bincount(all_y, minlength=d.n_classes) / len(all_y)
    for y in (d.y_train, d.y_val, d.y_test):
        share = np.bincount(y, minlength=d.n_classes) / len(y)
        assert np.abs(share - overall).max() < 0.03


def test_sklearn_class_labels_follow_target_names() -> None:
    # scikit-learn documents breast_cancer code 0 as malignant: labels must not be re-sorted.
    assert load_dataset("sklearn:breast_cancer").class_labels == ("malignant", "benign")
    assert load_dataset("sklearn:iris").class_labels == ("setosa", "versicolor", "virginica")


def test_digits_image_shape_default_and_override() -> None:
    assert load_dataset("sklearn:digits").image_shape == (1, 8, 8)
    assert load_dataset("sklearn:digits", image_shape=(1, 4, 16)).image_shape == (1, 4, 16)
    assert load_dataset("sklearn:iris").image_shape is None
    # A column subset no longer fits the 8x8 default, so there is no image shape.
    subset = load_dataset("sklearn:digits", features=["pixel_0_0", "pixel_0_1"])
    assert subset.image_shape is None and subset.n_features == 2


def test_sklearn_explicit_matching_task_and_ignored_target() -> None:
    d = load_dataset("sklearn:iris", task="classification", target="whatever")
    assert d.task == "classification"
    assert d.fingerprint == load_dataset("sklearn:iris").fingerprint


def test_feature_subset_keeps_order() -> None:
    cols = ["petal width (cm)", "sepal length (cm)"]
    d = load_dataset("sklearn:iris", features=cols)
    assert d.feature_names == tuple(cols)
    full = load_dataset("sklearn:iris")
    # Same seed and same y, so rows line up: the subset is those columns of the full data.
    idx = [full.feature_names.index(c) for c in cols]
    np.testing.assert_array_equal(d.X_train, full.X_train[:, idx])


# --- determinism and fingerprints ------------------------------------------------------------


def test_same_settings_give_identical_splits_and_fingerprint() -> None:
    a = load_dataset("sklearn:wine", split_seed=7)
    b = load_dataset("sklearn:wine", split_seed=7)
    assert a.fingerprint == b.fingerprint
    for field in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_different_seed_changes_split_and_fingerprint() -> None:
    a = load_dataset("sklearn:wine", split_seed=0)
    b = load_dataset("sklearn:wine", split_seed=1)
    assert a.fingerprint != b.fingerprint
    assert not np.array_equal(a.X_test, b.X_test)


@pytest.mark.parametrize(
    "change",
    [
        {"split_seed": 3},
        {"validation_fraction": 0.25},
        {"test_fraction": 0.1},
        {"features": ["x1", "x2"]},
        {"task": "regression"},  # x2-like integer target re-read as a value
        {"target": "x2"},
    ],
    ids=lambda c: next(iter(c)),
)
def test_fingerprint_changes_with_each_setting(tmp_path: Path, change: dict[str, Any]) -> None:
    frame = _mixed_frame(80)
    frame["level"] = np.arange(80) % 4  # integer target: auto -> classification
    path = _write(frame, tmp_path / "d.csv")
    base: dict[str, Any] = {"target": "level"}
    reference = load_dataset(path, **base)
    assert reference.task == "classification"
    changed = load_dataset(path, **{**base, **change})
    assert changed.fingerprint != reference.fingerprint
    assert load_dataset(path, **base).fingerprint == reference.fingerprint


def test_fingerprint_changes_with_one_data_value(tmp_path: Path) -> None:
    frame = _mixed_frame()
    a = load_dataset(_write(frame, tmp_path / "a.csv"), target="label")
    frame.loc[5, "x1"] += 1.0
    b = load_dataset(_write(frame, tmp_path / "b.csv"), target="label")
    assert a.fingerprint != b.fingerprint


def test_fingerprint_is_about_data_not_location_or_format(tmp_path: Path) -> None:
    frame = _mixed_frame()
    csv = load_dataset(_write(frame, tmp_path / "same.csv"), target="label")
    parquet = load_dataset(_write(frame, tmp_path / "same.parquet"), target="label")
    assert csv.fingerprint == parquet.fingerprint
    np.testing.assert_array_equal(csv.X_train, parquet.X_train)


# --- files -----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_file_with_categorical_and_bool_columns(tmp_path: Path, suffix: str) -> None:
    frame = _mixed_frame(60)
    if suffix == ".parquet":
        frame["color"] = frame["color"].astype("category")  # Parquet keeps the dtype
    path = _write(frame, tmp_path / f"pets{suffix}")
    d = load_dataset(path, target="label")
    assert d.name == "pets"
    assert d.task == "classification"
    assert d.class_labels == ("cat", "dog")
    assert d.feature_names == ("x1", "x2", "color=blue", "color=green", "color=red", "flag")
    X = np.vstack([d.X_train, d.X_val, d.X_test])
    onehot = X[:, 2:5]
    assert set(np.unique(onehot)) == {0.0, 1.0}
    np.testing.assert_array_equal(onehot.sum(axis=1), np.ones(60, dtype=np.float32))
    assert set(np.unique(X[:, 5])) == {0.0, 1.0}
    assert X[:, 5].sum() == 30  # half the rows have flag=True
    assert _split_sizes(d) == (36, 12, 12)
    # Rows stay intact: for every row, flag=True exactly when the label is "cat".
    y = np.concatenate([d.y_train, d.y_val, d.y_test])
    np.testing.assert_array_equal(X[:, 5] == 1.0, y == d.class_labels.index("cat"))


def test_regression_file_and_relative_path(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=50), "b": rng.normal(size=50)})
    frame["price"] = 3 * frame["a"] + rng.normal(size=50)
    (tmp_path / "sub").mkdir()
    _write(frame, tmp_path / "sub" / "house.csv")
    d = load_dataset("sub/house.csv", target="price", base_dir=tmp_path)
    assert d.task == "regression"
    assert d.y_train.dtype == np.float32 and d.class_labels == ()
    assert sorted(np.concatenate([d.y_train, d.y_val, d.y_test])) == pytest.approx(
        sorted(frame["price"].astype(np.float32))
    )


def test_file_url(tmp_path: Path) -> None:
    path = _write(_mixed_frame(), tmp_path / "u.csv")
    by_url = load_dataset(path.as_uri(), target="label")
    assert by_url.fingerprint == load_dataset(path, target="label").fingerprint


@pytest.mark.parametrize(
    ("target_values", "expected_task", "expected_labels"),
    [
        (np.array(["a", "b", "c"] * 10), "classification", ("a", "b", "c")),
        (np.arange(30) % 3, "classification", ("0", "1", "2")),
        (np.arange(30) % 3 + 1.0, "classification", ("1", "2", "3")),
        (np.arange(30) % 2 == 0, "classification", ("False", "True")),
        (np.arange(30) * 7 % 25, "regression", ()),  # 25 distinct integers > 20
        (np.linspace(0, 1, 30), "regression", ()),
        (np.array([0.5, 1.5] * 15), "regression", ()),  # few values, but not integers
    ],
    ids=["strings", "ints-few", "int-valued-floats", "bools", "ints-many", "floats", "halves"],
)
def test_task_auto_detection(
    tmp_path: Path,
    target_values: np.ndarray,
    expected_task: str,
    expected_labels: tuple[str, ...],
) -> None:
    frame = pd.DataFrame({"x": np.arange(30, dtype=float), "t": target_values})
    d = load_dataset(_write(frame, tmp_path / "t.csv"), target="t")
    assert d.task == expected_task
    assert d.class_labels == expected_labels


def test_numeric_class_labels_sort_numerically(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": np.arange(30.0), "t": np.array([2, 10, 1] * 10)})
    d = load_dataset(_write(frame, tmp_path / "n.csv"), target="t")
    assert d.class_labels == ("1", "2", "10")


def test_explicit_task_overrides_detection(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": np.arange(30.0), "t": np.arange(30) % 3})
    path = _write(frame, tmp_path / "o.csv")
    d = load_dataset(path, target="t", task="regression")
    assert d.task == "regression" and d.y_train.dtype == np.float32
    # 25 distinct integers would be auto-detected as regression; ask for classes instead.
    many = pd.DataFrame({"x": np.arange(100.0), "t": np.arange(100) % 25})
    d2 = load_dataset(
        _write(many, tmp_path / "m.csv"),
        target="t",
        task="classification",
        validation_fraction=0.25,
        test_fraction=0.25,
    )
    assert d2.task == "classification" and d2.n_classes == 25
    assert set(d2.y_test) == set(range(25))  # stratified: one row of each class


# --- errors ----------------------------------------------------------------------------------

Setup = Callable[[Path], tuple[str, dict[str, Any]]]


def _file(frame: pd.DataFrame, name: str = "data.csv", **kwargs: Any) -> Setup:
    def setup(tmp: Path) -> tuple[str, dict[str, Any]]:
        return str(_write(frame, tmp / name)), kwargs

    return setup


def _raw_file(content: bytes, name: str, **kwargs: Any) -> Setup:
    def setup(tmp: Path) -> tuple[str, dict[str, Any]]:
        (tmp / name).write_bytes(content)
        return str(tmp / name), kwargs

    return setup


def _source(source: str, **kwargs: Any) -> Setup:
    return lambda tmp: (source, kwargs)


def _with(**columns: Any) -> pd.DataFrame:
    frame = _mixed_frame(40)
    for name, values in columns.items():
        frame[name] = values
    return frame


BAD_INPUTS: list[tuple[str, Setup, list[str]]] = [
    (
        "missing-file",
        lambda tmp: ("nope/none.csv", {"target": "y", "base_dir": tmp}),
        ["not found", "nope/none.csv", "{tmp}"],
    ),
    ("unsupported-extension", _raw_file(b"a,b\n1,2\n", "d.xlsx", target="b"), [".xlsx", ".csv"]),
    ("corrupt-parquet", _raw_file(b"\x00garbage" * 20, "bad.parquet", target="y"), ["bad.parquet"]),
    ("empty-csv", _raw_file(b"", "empty.csv", target="y"), ["cannot read", "empty.csv"]),
    ("directory", lambda tmp: (str(tmp), {"target": "y"}), ["directory", "{tmp}"]),
    ("target-not-given", _file(_mixed_frame()), ["target", "'x1'", "'label'"]),
    ("missing-target-col", _file(_mixed_frame(), target="price"), ["'price'", "'x1'", "'label'"]),
    (
        "unknown-sklearn",
        _source("sklearn:nope"),
        ["sklearn:nope", "sklearn:iris", "sklearn:digits"],
    ),
    ("unknown-feature", _source("sklearn:iris", features=["petal"]), ["'petal'", "petal width"]),
    ("empty-features", _source("sklearn:iris", features=[]), ["features"]),
    (
        "target-in-features",
        _file(_mixed_frame(), target="label", features=["x1", "label"]),
        ["'label'"],
    ),
    ("too-few-rows", _file(_mixed_frame(12), target="label"), ["12 rows", "20"]),
    (
        "empty-train-split",
        _file(_mixed_frame(20), target="label", validation_fraction=0.5, test_fraction=0.49),
        ["20 rows", "training split would be empty"],
    ),
    ("fractions-sum", _source("sklearn:iris", validation_fraction=0.5, test_fraction=0.5), ["< 1"]),
    (
        "val-fraction-zero",
        _source("sklearn:iris", validation_fraction=0.0),
        ["validation_fraction"],
    ),
    ("test-fraction-negative", _source("sklearn:iris", test_fraction=-0.1), ["test_fraction"]),
    ("fraction-nan", _source("sklearn:iris", test_fraction=float("nan")), ["test_fraction"]),
    ("bad-seed", _source("sklearn:iris", split_seed=-1), ["split_seed"]),
    ("bad-task", _source("sklearn:iris", task="clustering"), ["task", "clustering"]),
    ("sklearn-task-conflict", _source("sklearn:diabetes", task="classification"), ["regression"]),
    ("single-class", _file(_with(label="cat"), target="label"), ["single class", "'label'", "cat"]),
    (
        "image-shape-mismatch",
        _source("sklearn:iris", image_shape=(1, 3, 3)),
        ["image_shape", "9", "4 features"],
    ),
    ("image-shape-malformed", _source("sklearn:digits", image_shape=(8, 8)), ["image_shape"]),
    (
        "missing-target-values",
        _file(_with(label=["cat", None, None] + ["dog"] * 37), target="label"),
        ["2 of 40 rows", "'label'"],
    ),
    (
        "high-cardinality-text",
        _file(_with(user=[f"user{i}" for i in range(40)]), target="label"),
        ["'user'", "40 distinct", "features"],
    ),
    (
        "datetime-feature",
        _file(_with(when=pd.date_range("2024-01-01", periods=40)), "d.parquet", target="label"),
        ["'when'", "datetime"],
    ),
    (
        "infinite-feature",
        _file(_with(x1=[np.inf] + [0.0] * 39), target="label"),
        ["'x1'", "infinite"],
    ),
    (
        "regression-on-text",
        _file(_mixed_frame(), target="label", task="regression"),
        ["'label'", "not numeric"],
    ),
    (
        "rare-class",
        _file(_with(label=["rare"] * 2 + ["common"] * 38), target="label"),
        ["'rare' (2 rows)", "stratified"],
    ),
    (
        "too-many-classes-for-split",
        _file(
            _with(label=[f"c{i % 10}" for i in range(40)]),
            target="label",
            validation_fraction=0.3,
            test_fraction=0.1,
        ),
        ["test split", "4 rows", "10 classes"],
    ),
    ("unknown-scheme", _source("http://example.com/d.csv", target="y"), ["'http'", "file://"]),
    ("file-url-relative", _source("file://data.csv", target="y"), ["file:///", "file://data.csv"]),
]


@pytest.mark.parametrize(
    ("setup", "expected"),
    [pytest.param(setup, expected, id=case) for case, setup, expected in BAD_INPUTS],
)
def test_bad_input_raises_data_error(tmp_path: Path, setup: Setup, expected: list[str]) -> None:
    source, kwargs = setup(tmp_path)
    with pytest.raises(DataError) as info:
        load_dataset(source, **kwargs)
    message = str(info.value)
    for fragment in expected:
        assert fragment.replace("{tmp}", str(tmp_path.resolve())) in message, message


def test_planned_scheme_data_source_is_not_supported_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    from kubetune.storage import registry

    monkeypatch.setattr(registry, "_PLANNED", {"gs": "the GCS support"})
    with pytest.raises(DataError, match=r"gs:// data sources are not supported yet"):
        load_dataset("gs://bucket/data.csv", target="y")
