"""Column kinds, task detection and target encoding (features: ``preprocessing``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kubetune.data.dataset import Task
from kubetune.errors import DataError

# A string column with more distinct values than this is likely an id or free text:
# one-hot encoding it would add many useless, sparse features.
MAX_CATEGORIES = 32
# Auto-detection: an integer-valued target with at most this many values is a class label.
MAX_AUTO_CLASSES = 20

# pandas' infer_dtype names for object columns that hold plain numbers or booleans.
_NUMERIC_OBJECTS = {"integer", "floating", "mixed-integer-float", "decimal"}


def _is_number_dtype(series: pd.Series) -> bool:
    """Real numbers (numpy or nullable pandas dtypes), not bool and not complex."""
    dtype = series.dtype
    return (
        pd.api.types.is_numeric_dtype(dtype)
        and not pd.api.types.is_bool_dtype(dtype)
        and not pd.api.types.is_complex_dtype(dtype)
    )


def _is_text_like(series: pd.Series) -> bool:
    dtype = series.dtype
    return (
        isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
    )


def column_kind(series: pd.Series) -> str:
    """'number', 'bool', 'text' or 'other' — how a column can be encoded."""
    if pd.api.types.is_bool_dtype(series.dtype):
        return "bool"
    if _is_number_dtype(series):
        return "number"
    if _is_text_like(series):
        # Object columns can hold Python numbers/bools (e.g. Parquet decimals).
        inferred = pd.api.types.infer_dtype(series, skipna=True)
        if inferred == "boolean":
            return "bool"
        if inferred in _NUMERIC_OBJECTS:
            return "number"
        return "text"
    return "other"


def _as_float32(series: pd.Series) -> np.ndarray:
    # Through float64 so values beyond float32's range become inf and are caught later,
    # instead of raising inside pandas with a message that names no column.
    return series.to_numpy(dtype=np.float64).astype(np.float32)


def encode_features(frame: pd.DataFrame) -> tuple[np.ndarray, tuple[str, ...]]:
    """Numbers as float32 (missing ones NaN), bools as 0/1, low-cardinality text one-hot as
    ``col=value``; see :class:`kubetune.data.preprocessing.FeatureEncoder`."""
    from kubetune.data.preprocessing import FeatureEncoder  # it builds on this module

    encoder = FeatureEncoder.fit(frame)
    return encoder.transform(frame), encoder.feature_names


def detect_task(target: pd.Series) -> Task:
    """Text/bool targets and integer targets with few values are classes; the rest is a value."""
    kind = column_kind(target)
    if kind != "number":
        return "classification"
    values = target.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        return "regression"  # encode_target then reports the non-finite values
    integer_valued = bool(np.all(values == np.round(values)))
    if integer_valued and len(np.unique(values)) <= MAX_AUTO_CLASSES:
        return "classification"
    return "regression"


def _label_values(target: pd.Series) -> np.ndarray:
    """Values whose np.unique order is the class order: numbers sort numerically."""
    if column_kind(target) == "number":
        values = target.to_numpy(dtype=np.float64)
        if np.isfinite(values).all() and np.all(values == np.round(values)):
            return values.astype(np.int64)  # so 1.0 is labelled "1"
        return values
    return target.astype(str).to_numpy(dtype=object)


def encode_target(
    target: pd.Series, task: Task, class_names: tuple[str, ...] = ()
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Classification: int64 indices into the sorted labels; regression: float32 values."""
    name = str(target.name)
    if task == "regression":
        if column_kind(target) != "number":
            raise DataError(
                f"target column {name!r} is not numeric ({target.dtype}), so it can't be a"
                " regression target; use task: classification"
            )
        y = _as_float32(target)
        if not np.isfinite(y).all():
            raise DataError(
                f"target column {name!r} holds infinite values or values too large for float32"
            )
        return y, ()

    labels, codes = np.unique(_label_values(target), return_inverse=True)
    if len(labels) < 2:
        only = labels[0] if len(labels) else "(none)"
        raise DataError(
            f"target column {name!r} has a single class ({only!s}); classification needs"
            " at least two"
        )
    if class_names:
        names = tuple(class_names[int(code)] for code in labels)
    else:
        names = tuple(str(label) for label in labels)
    return codes.astype(np.int64).reshape(-1), names
