"""The small datasets bundled with scikit-learn (no download needed)."""

from __future__ import annotations

import importlib

from kubetune.data.dataset import Task
from kubetune.data.raw import RawTable
from kubetune.errors import DataError

# Loader names, not functions: importing sklearn.datasets costs about a second, and listing
# SKLEARN_DATASETS (e.g. in the CLI) should not pay it.
_LOADERS: dict[str, tuple[str, Task]] = {
    "breast_cancer": ("load_breast_cancer", "classification"),
    "diabetes": ("load_diabetes", "regression"),
    "digits": ("load_digits", "classification"),
    "iris": ("load_iris", "classification"),
    "wine": ("load_wine", "classification"),
}

# Datasets that are pictures: trainers with convolutional layers need their shape.
_IMAGE_SHAPES: dict[str, tuple[int, int, int]] = {"digits": (1, 8, 8)}

SKLEARN_DATASETS: tuple[str, ...] = tuple(sorted(_LOADERS))


def load_sklearn_table(name: str) -> RawTable:
    """Load ``sklearn:<name>``; the target is the integer class code or the regression value."""
    key = name.strip().lower()
    if key not in _LOADERS:
        valid = ", ".join(f"sklearn:{n}" for n in SKLEARN_DATASETS)
        raise DataError(f"unknown sklearn dataset 'sklearn:{name}'; valid ones: {valid}")
    loader_name, task = _LOADERS[key]
    loader = getattr(importlib.import_module("sklearn.datasets"), loader_name)
    bunch = loader(as_frame=True)
    features = bunch.data
    features.columns = [str(c) for c in features.columns]
    class_names: tuple[str, ...] = ()
    if task == "classification":
        # Codes 0..k-1 index target_names; keep that order rather than sorting the names,
        # so e.g. breast_cancer keeps 0 = malignant as scikit-learn documents it.
        class_names = tuple(str(n) for n in bunch.target_names)
    return RawTable(
        name=key,
        features=features,
        target=bunch.target,
        task=task,
        class_names=class_names,
        default_image_shape=_IMAGE_SHAPES.get(key),
    )
