"""Data retrieval: load a source into train/validation/test splits."""

from __future__ import annotations

from kubetune.data.dataset import Dataset, Task
from kubetune.data.sklearn_datasets import SKLEARN_DATASETS
from kubetune.data.sources import load_dataset

__all__ = ["SKLEARN_DATASETS", "Dataset", "Task", "load_dataset"]
