"""Train / validation / test row indices."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kubetune.data.dataset import Task
from kubetune.errors import DataError

MIN_ROWS = 20
# Stratification puts every class in every split, so a class needs a row for each.
MIN_ROWS_PER_CLASS = 3


@dataclass(frozen=True)
class SplitSizes:
    train: int
    val: int
    test: int


def check_fractions(validation_fraction: float, test_fraction: float) -> None:
    for name, value in (
        ("validation_fraction", validation_fraction),
        ("test_fraction", test_fraction),
    ):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise DataError(f"{name} must be a number between 0 and 1; got {value!r}")
        if not 0 < value < 1:
            raise DataError(f"{name} must be > 0 and < 1; got {value!r}")
    if validation_fraction + test_fraction >= 1:
        raise DataError(
            f"validation_fraction + test_fraction must be < 1 to leave rows for training;"
            f" got {validation_fraction!r} + {test_fraction!r}"
        )


def check_seed(split_seed: int) -> None:
    # scikit-learn seeds numpy's legacy RandomState, which takes 0 <= seed < 2**32.
    if (
        isinstance(split_seed, bool)
        or not isinstance(split_seed, int)
        or not 0 <= split_seed < 2**32
    ):
        raise DataError(f"split_seed must be an integer in [0, 2**32); got {split_seed!r}")


def split_sizes(n_rows: int, validation_fraction: float, test_fraction: float) -> SplitSizes:
    """Both fractions are of all rows; each split gets at least one row or this raises."""
    if n_rows < MIN_ROWS:
        raise DataError(f"the data has only {n_rows} rows; at least {MIN_ROWS} are needed")
    test = max(1, int(test_fraction * n_rows + 0.5))
    val = max(1, int(validation_fraction * n_rows + 0.5))
    train = n_rows - test - val
    if train < 1:
        raise DataError(
            f"{n_rows} rows are too few for validation_fraction={validation_fraction} and"
            f" test_fraction={test_fraction}: the training split would be empty"
        )
    return SplitSizes(train=train, val=val, test=test)


def _check_stratifiable(y: np.ndarray, sizes: SplitSizes, class_labels: tuple[str, ...]) -> None:
    counts = np.bincount(y, minlength=len(class_labels))
    rare = [
        f"{class_labels[i]!r} ({counts[i]} rows)"
        for i in np.flatnonzero(counts < MIN_ROWS_PER_CLASS)
    ]
    if rare:
        raise DataError(
            f"class(es) {', '.join(rare)} have fewer than {MIN_ROWS_PER_CLASS} rows; a"
            " stratified split needs one in each of train, validation and test. Add rows or"
            " merge/drop those classes"
        )
    n_classes = len(class_labels)
    for split, size in (("train", sizes.train), ("validation", sizes.val), ("test", sizes.test)):
        if size < n_classes:
            raise DataError(
                f"the {split} split would have {size} row{'' if size == 1 else 's'} but there"
                f" are {n_classes} classes;"
                " a stratified split needs at least one row per class. Add rows or raise"
                " the fraction"
            )


def split_indices(
    y: np.ndarray,
    task: Task,
    class_labels: tuple[str, ...],
    sizes: SplitSizes,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Test first, then validation from the rest; stratified for classification."""
    # Imported here so `import kubetune.data` stays light (sklearn takes about a second).
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(y))
    stratify = task == "classification"
    if stratify:
        _check_stratifiable(y, sizes, class_labels)
    try:
        rest, test = train_test_split(
            rows, test_size=sizes.test, random_state=seed, stratify=y if stratify else None
        )
        train, val = train_test_split(
            rest, test_size=sizes.val, random_state=seed, stratify=y[rest] if stratify else None
        )
    except ValueError as exc:
        # Left after the checks above: a rare class that the first split nearly used up.
        raise DataError(f"cannot split the data stratified by class: {exc}") from exc
    return np.asarray(train), np.asarray(val), np.asarray(test)
