"""Step: evaluate a model on the held-out test split."""

from __future__ import annotations

from kubetune.data import Dataset
from kubetune.steps.trial import evaluate_split
from kubetune.trainers import TrainedModel


def evaluate(model: TrainedModel, data: Dataset) -> dict[str, float]:
    """Every metric of the task on the test split, ``test_``-prefixed."""
    return evaluate_split(model, data, "test")
