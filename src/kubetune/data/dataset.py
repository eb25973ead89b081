"""The in-memory dataset every trainer receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from kubetune.data.preprocessing import FeatureEncoder

Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class Dataset:
    """Train/validation/test splits of one data source.

    ``X_*`` are float32 arrays of shape (rows, features). ``y_*`` are int64 class indices
    (0..n_classes-1) for classification and float32 for regression. Missing numbers are NaN
    (trainers whose model cannot take NaN impute them). ``encoder`` turns raw rows into
    ``X`` (stored with the model); ``raw_test`` holds the test split's raw feature rows, so
    another model (the champion) can be scored through its own stored encoder.
    """

    name: str
    task: Task
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    feature_names: tuple[str, ...]
    class_labels: tuple[str, ...] = ()  # original label of each class index
    image_shape: tuple[int, int, int] | None = None  # (channels, height, width) if image-shaped
    fingerprint: str = ""  # sha256 of the raw data and the split settings
    encoder: FeatureEncoder | None = field(default=None, repr=False, compare=False)
    raw_test: pd.DataFrame | None = field(default=None, repr=False, compare=False)

    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def n_classes(self) -> int:
        return len(self.class_labels)
