"""``load_dataset``: read a data source, encode it, and split it into a Dataset."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import get_args

import pandas as pd

from kubetune.data.dataset import Dataset, Task
from kubetune.data.encoding import detect_task, encode_target
from kubetune.data.files import load_file_table, load_prefix_table, load_stored_table
from kubetune.data.fingerprint import compute_fingerprint
from kubetune.data.preprocessing import FeatureEncoder, TargetEncoding, target_labels
from kubetune.data.raw import RawTable, quoted
from kubetune.data.sklearn_datasets import SKLEARN_DATASETS, load_sklearn_table
from kubetune.data.splits import check_fractions, check_seed, split_indices, split_sizes
from kubetune.errors import DataError, StorageError
from kubetune.storage import UnsupportedSchemeError, local_path, store_schemes

_TASKS: tuple[str, ...] = ("auto", *get_args(Task))


def _load_table(source: str, target: str | None, base_dir: Path) -> RawTable:
    """``sklearn:<name>``, a local path or ``file://`` URI, or any URI the storage registry
    serves (a new scheme is a store registered there, not code here)."""
    if source.startswith("sklearn:"):
        return load_sklearn_table(source.removeprefix("sklearn:"))
    try:
        if source.rstrip().endswith("/"):  # a prefix (folder): its files as one table
            return load_prefix_table(source, target, base_dir)
        path = local_path(source, base_dir)
        if path is not None:
            return load_file_table(path, target)
        return load_stored_table(source, target, base_dir)
    except UnsupportedSchemeError as exc:
        if exc.planned is not None:
            raise DataError(
                f"{exc.scheme}:// data sources are not supported yet ({source}); download the"
                " file and give its local path"
            ) from None
        supported = ", ".join(
            ["sklearn:<name>", *(f"{s}://" for s in store_schemes()), "a local path"]
        )
        raise DataError(
            f"unsupported data source scheme {exc.scheme!r} in {source!r}; use {supported}"
        ) from None
    except StorageError as exc:
        # Data problems are DataErrors for callers, wherever the bytes came from.
        raise DataError(str(exc)) from exc


def _check_image_shape(image_shape: Sequence[int] | None) -> tuple[int, int, int] | None:
    if image_shape is None:
        return None
    shape = tuple(image_shape)
    if len(shape) != 3 or not all(
        isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape
    ):
        raise DataError(
            "image_shape must be three positive integers (channels, height, width);"
            f" got {image_shape!r}"
        )
    return (shape[0], shape[1], shape[2])


def _select_features(table: RawTable, features: Sequence[str] | None) -> pd.DataFrame:
    if features is None:
        return table.features
    wanted = [str(f) for f in features]
    if not wanted:
        raise DataError("features is empty; list at least one column, or leave it out to use all")
    target_name = str(table.target.name)
    if target_name in wanted:
        raise DataError(f"the target column {target_name!r} can't also be listed in features")
    unknown = [f for f in wanted if f not in table.features.columns]
    if unknown:
        raise DataError(
            f"unknown feature column(s) {quoted(unknown)} in {table.name!r}; available:"
            f" {quoted(table.features.columns)}"
        )
    repeated = sorted({f for f in wanted if wanted.count(f) > 1})
    if repeated:
        raise DataError(f"feature column(s) {quoted(repeated)} are listed more than once")
    return table.features[wanted]


def _resolve_task(table: RawTable, task: str) -> Task:
    if table.task is not None:
        if task not in ("auto", table.task):
            raise DataError(
                f"sklearn:{table.name} is a {table.task} dataset; task {task!r} doesn't apply"
                f" (use task: auto or {table.task})"
            )
        return table.task
    if task == "auto":
        return detect_task(table.target)
    return "classification" if task == "classification" else "regression"


def _resolve_image_shape(
    requested: tuple[int, int, int] | None,
    default: tuple[int, int, int] | None,
    n_features: int,
) -> tuple[int, int, int] | None:
    if requested is None:
        # The default only fits the full dataset, not a chosen subset of its columns.
        if default is not None and default[0] * default[1] * default[2] == n_features:
            return default
        return None
    size = requested[0] * requested[1] * requested[2]
    if size != n_features:
        raise DataError(
            f"image_shape {requested} holds {size} values but the data has {n_features}"
            " features (after one-hot encoding)"
        )
    return requested


def load_dataset(
    source: str | os.PathLike[str],
    *,
    target: str | None = None,
    task: str = "auto",
    features: list[str] | None = None,
    validation_fraction: float = 0.2,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    image_shape: tuple[int, int, int] | None = None,
    base_dir: Path | None = None,
) -> Dataset:
    """Load ``source`` and split it into train/validation/test.

    ``source`` is ``sklearn:<name>`` (see ``SKLEARN_DATASETS``), a ``.csv``/``.parquet``
    path (relative to ``base_dir``, default the current directory), a ``file:///`` or
    ``s3://`` URI of one file, or a folder/prefix ending in ``/`` whose CSV/Parquet files
    are read as one table.
    Both fractions are of all rows. Raises DataError for anything wrong with the input.
    """
    # Cheap argument checks first, so a typo fails before a large file is read.
    if task not in _TASKS:
        raise DataError(f"task must be one of {', '.join(_TASKS)}; got {task!r}")
    check_fractions(validation_fraction, test_fraction)
    check_seed(split_seed)
    requested_shape = _check_image_shape(image_shape)

    table = _load_table(os.fspath(source), target, base_dir or Path.cwd())
    try:
        frame = _select_features(table, features)
        n_missing = int(table.target.isna().sum())
        if n_missing:
            raise DataError(
                f"{n_missing} of {len(table.target)} rows have no value in target column"
                f" {str(table.target.name)!r}; drop or fill them"
            )
        sizes = split_sizes(len(table.target), validation_fraction, test_fraction)
        resolved_task = _resolve_task(table, task)
        # Layout (kinds, categories) from all rows, as the split needs no features; the
        # fill values (medians) from the training rows only.
        encoder = FeatureEncoder.fit(frame)
        X, feature_names = encoder.transform(frame), encoder.feature_names
        y, class_labels = encode_target(table.target, resolved_task, table.class_names)
        shape = _resolve_image_shape(requested_shape, table.default_image_shape, X.shape[1])
        train, val, test = split_indices(y, resolved_task, class_labels, sizes, split_seed)
        labels = target_labels(table.target, class_labels, bool(table.class_names))
        target_encoding = TargetEncoding(str(table.target.name), resolved_task, labels)
        encoder = replace(encoder.with_fill(X[train]), target=target_encoding)
    except DataError as exc:
        # Content problems name the source, like loading problems do.
        raise DataError(f"{os.fspath(source)}: {exc}") from None

    fingerprint = compute_fingerprint(
        X,
        y,
        feature_names,
        class_labels,
        {
            "task": resolved_task,
            "target": str(table.target.name),
            "features": [str(c) for c in frame.columns],
            "validation_fraction": float(validation_fraction),
            "test_fraction": float(test_fraction),
            "split_seed": int(split_seed),
        },
    )
    return Dataset(
        name=table.name,
        task=resolved_task,
        X_train=X[train],
        y_train=y[train],
        X_val=X[val],
        y_val=y[val],
        X_test=X[test],
        y_test=y[test],
        feature_names=feature_names,
        class_labels=class_labels,
        image_shape=shape,
        fingerprint=fingerprint,
        encoder=encoder,
        # Every feature column, not only the selected ones: a champion trained on other
        # columns can still be scored.
        raw_test=table.features.iloc[test].reset_index(drop=True),
    )


__all__ = ["SKLEARN_DATASETS", "load_dataset"]
