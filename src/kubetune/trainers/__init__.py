"""Built-in trainers (torch MLP/CNN, scikit-learn, custom functions) and metrics.

Importing this package is cheap: torch and scikit-learn load only when a trainer or
metric that needs them is used.
"""

from __future__ import annotations

from kubetune.trainers.base import NullReporter, TrainedModel, Trainer
from kubetune.trainers.metrics import METRICS_BY_TASK, compute_metrics, metric_direction
from kubetune.trainers.registry import TRAINER_KINDS, get_trainer

__all__ = [
    "METRICS_BY_TASK",
    "TRAINER_KINDS",
    "NullReporter",
    "TrainedModel",
    "Trainer",
    "compute_metrics",
    "get_trainer",
    "metric_direction",
]
