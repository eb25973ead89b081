"""The fitted feature encoder: raw rows -> the float32 matrix a model was trained on.

It is stored with every model version (``preprocessing.json``), so a model predicts on new
raw rows and the champion gate re-scores an old model through its *own* layout: columns are
found by name (order never matters, extra columns are ignored), text categories one-hot in
the stored order, unseen categories encode as all zeros.

Missing values: a text column's missing values are their own category (``<missing>``); a
number/bool column's missing values stay NaN in the matrix, and the model decides — trainers
whose estimator cannot take NaN impute it (median of the training rows), others such as
HistGradientBoosting use NaN natively. ``fill`` records the training median for each number.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from kubetune.data.dataset import Task
from kubetune.data.encoding import MAX_CATEGORIES, column_kind
from kubetune.data.raw import quoted
from kubetune.errors import DataError

PREPROCESSING_FILE = "preprocessing.json"
FORMAT_VERSION = 1
# The category a text column's missing values get (brackets: unlikely to be a real value).
MISSING = "<missing>"

_EXCLUDE_HINT = "leave them out with `features:`"
Kind = Literal["number", "bool", "text"]
Label = str | int | float


@dataclass(frozen=True)
class ColumnEncoding:
    """How one input column becomes features."""

    name: str
    kind: Kind
    dtype: str  # the training data's dtype, for the record
    fill: float | None = None  # number/bool: median of the training rows (None: none seen)
    categories: tuple[str, ...] = ()  # text: one feature ``name=category`` each, in order

    @property
    def feature_names(self) -> tuple[str, ...]:
        if self.kind == "text":
            return tuple(f"{self.name}={c}" for c in self.categories)
        return (self.name,)


@dataclass(frozen=True)
class TargetEncoding:
    """The target column: its task and, for classes, the original label of each index."""

    name: str
    task: Task
    labels: tuple[Label, ...] = ()


@dataclass(frozen=True)
class FeatureEncoder:
    columns: tuple[ColumnEncoding, ...]
    target: TargetEncoding | None = None

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(name for column in self.columns for name in column.feature_names)

    @property
    def input_columns(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    # ------------------------------------------------------------------ fitting

    @classmethod
    def fit(cls, frame: pd.DataFrame, target: TargetEncoding | None = None) -> FeatureEncoder:
        """Layout from all rows of ``frame`` (kinds, categories); fill from all rows too,
        until :meth:`with_fill` sets it from the training rows."""
        if frame.shape[1] == 0:
            raise DataError("there are no feature columns: the data holds only the target column")
        columns: list[ColumnEncoding] = []
        too_many: list[str] = []
        unusable: list[str] = []
        for name in frame.columns:
            series = frame[name]
            kind = column_kind(series)
            if kind in ("number", "bool"):
                values = _numbers(series, str(name))
                number: Kind = "bool" if kind == "bool" else "number"
                column = ColumnEncoding(str(name), number, str(series.dtype), _median(values))
                columns.append(column)
            elif kind == "text":
                categories = tuple(str(v) for v in np.unique(_texts(series)))
                if len(categories) > MAX_CATEGORIES:
                    too_many.append(f"{name!r} ({len(categories)} distinct values)")
                    continue
                columns.append(
                    ColumnEncoding(str(name), "text", str(series.dtype), None, categories)
                )
            else:
                unusable.append(f"{name!r} ({series.dtype})")
        problems = []
        if too_many:
            problems.append(
                f"text column(s) {', '.join(too_many)} have more than {MAX_CATEGORIES} distinct"
                " values and can't be used as features"
            )
        if unusable:
            problems.append(f"column(s) {', '.join(unusable)} have a type that can't be a feature")
        if problems:
            raise DataError("; ".join(problems) + f"; convert them to numbers or {_EXCLUDE_HINT}")
        encoder = cls(tuple(columns), target)
        names = encoder.feature_names
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise DataError(
                f"feature names {quoted(dupes)} occur twice after one-hot encoding; rename a column"
            )
        return encoder

    def with_fill(self, X_train: np.ndarray) -> FeatureEncoder:
        """The same layout with each number's fill value the median of these (training) rows."""
        columns, start = [], 0
        for column in self.columns:
            width = len(column.feature_names)
            if column.kind != "text":
                column = replace(column, fill=_median(X_train[:, start].astype(np.float64)))
            columns.append(column)
            start += width
        return replace(self, columns=tuple(columns))

    # ------------------------------------------------------------------ using

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Raw rows -> float32 features; missing numbers stay NaN (see :meth:`impute`)."""
        absent = [c.name for c in self.columns if c.name not in frame.columns]
        if absent:
            raise DataError(
                f"missing column(s) {quoted(absent)}: the model needs {quoted(self.input_columns)}"
            )
        blocks: list[np.ndarray] = []
        for column in self.columns:
            series = frame[column.name]
            if column.kind == "text":
                # An unseen category gets code -1, which matches no column: all zeros.
                index = pd.Index(column.categories).get_indexer(_texts(series))
                width = len(column.categories)
                blocks.append((index[:, None] == np.arange(width)).astype(np.float32))
            else:
                # Through float64 so values beyond float32's range become inf and are caught
                # below, instead of raising inside pandas with a message naming no column.
                values = _numbers(series, column.name).astype(np.float32)
                blocks.append(values[:, None])
        if not blocks:
            return np.zeros((len(frame), 0), dtype=np.float32)
        X = np.ascontiguousarray(np.hstack(blocks), dtype=np.float32)
        bad = np.isinf(X).any(axis=0)
        if bad.any():
            raise DataError(
                f"feature column(s) {quoted(np.asarray(self.feature_names)[bad])} hold infinite"
                f" values or values too large for float32; fix them or {_EXCLUDE_HINT}"
            )
        return X

    def fill_values(self) -> np.ndarray:
        """Per feature: the value a missing entry is imputed with (0 for one-hot features)."""
        values = []
        for column in self.columns:
            if column.kind == "text":
                values.extend([0.0] * len(column.categories))
            else:
                values.append(0.0 if column.fill is None else column.fill)
        return np.asarray(values, dtype=np.float32)

    def impute(self, X: np.ndarray) -> np.ndarray:
        """``X`` with NaN replaced by each feature's training median (for custom trainers)."""
        return np.where(np.isnan(X), self.fill_values(), X).astype(np.float32)

    # ------------------------------------------------------------------ storage

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "missing_text_category": MISSING,
            "columns": [_column_dict(c) for c in self.columns],
            "feature_names": list(self.feature_names),
        }
        if self.target is not None:
            target = asdict(self.target)
            target["labels"] = list(self.target.labels)
            data["target"] = target
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str = "preprocessing") -> FeatureEncoder:
        try:
            if data.get("format_version") != FORMAT_VERSION:
                raise DataError(f"unsupported format_version {data.get('format_version')!r}")
            columns = tuple(
                ColumnEncoding(
                    name=str(c["name"]),
                    kind=c["kind"],
                    dtype=str(c.get("dtype", "")),
                    categories=tuple(str(v) for v in c.get("categories", ())),
                    fill=None if c.get("fill") is None else float(c["fill"]),
                )
                for c in data["columns"]
            )
            bad = [c.name for c in columns if c.kind not in ("number", "bool", "text")]
            if bad:
                raise DataError(f"unknown column kind for {quoted(bad)}")
            target = None
            if data.get("target") is not None:
                t = data["target"]
                target = TargetEncoding(str(t["name"]), t["task"], tuple(t.get("labels", ())))
            encoder = cls(columns, target)
            stored = data.get("feature_names")
            if stored is not None and tuple(stored) != encoder.feature_names:
                raise DataError("feature_names do not match the columns")
            return encoder
        except DataError as exc:
            raise DataError(f"{where} is not a valid feature encoder: {exc}") from None
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{where} is not a valid feature encoder: {exc!r}") from None

    def save(self, directory: Path) -> Path:
        path = Path(directory) / PREPROCESSING_FILE
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, directory: Path) -> FeatureEncoder:
        path = Path(directory) / PREPROCESSING_FILE
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"{path} is not valid JSON: {exc}") from None
        return cls.from_dict(data, str(path))


def target_labels(
    target: pd.Series, class_labels: tuple[str, ...], from_names: bool
) -> tuple[Label, ...]:
    """The original label of each class index: numbers stay numbers (1, not "1")."""
    if from_names or not class_labels:  # named codes (sklearn datasets), or a regression
        return class_labels
    if column_kind(target) == "number":
        values = target.to_numpy(dtype=np.float64)
        if np.all(values == np.round(values)):
            return tuple(int(v) for v in np.unique(values))
        return tuple(float(v) for v in np.unique(values))
    return class_labels


def _column_dict(column: ColumnEncoding) -> dict[str, Any]:
    data: dict[str, Any] = {"name": column.name, "kind": column.kind, "dtype": column.dtype}
    if column.kind == "text":
        data["categories"] = list(column.categories)
    else:
        data["fill"] = column.fill
    return data


def _numbers(series: pd.Series, name: str) -> np.ndarray:
    try:
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        examples = [v for v in series.dropna().unique()[:3]]
        raise DataError(
            f"column {name!r} must hold numbers, got values such as {examples!r}"
        ) from None


def _texts(series: pd.Series) -> np.ndarray:
    """Values as strings; missing ones as the ``<missing>`` category."""
    text = series.astype(str).to_numpy(dtype=object)
    text[series.isna().to_numpy()] = MISSING
    return text


def _median(values: np.ndarray) -> float | None:
    seen = values[~np.isnan(values)]
    return float(np.median(seen)) if len(seen) else None
