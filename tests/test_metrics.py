"""Metrics on small hand-made arrays whose values can be checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kubetune.errors import InvalidConfigError, KubetuneError
from kubetune.trainers import METRICS_BY_TASK, compute_metrics, metric_direction
from kubetune.trainers.metrics import compute_metric, count_classes

Y_TRUE = np.array([0, 1, 1, 0])
Y_PRED = np.array([0, 1, 0, 0])
# Positive-class scores: positives 0.8, 0.4; negatives 0.1, 0.5 -> 3 of 4 pairs ordered.
PROBA = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])


def test_classification_from_labels() -> None:
    got = compute_metrics("classification", Y_TRUE, Y_PRED)
    assert set(got) == {"accuracy", "f1"}  # no probabilities: no log_loss / roc_auc
    assert got["accuracy"] == pytest.approx(0.75)
    # class 0: precision 2/3, recall 1 -> f1 0.8; class 1: precision 1, recall 1/2 -> f1 2/3
    assert got["f1"] == pytest.approx((0.8 + 2 / 3) / 2)


def test_classification_with_probabilities() -> None:
    got = compute_metrics("classification", Y_TRUE, Y_PRED, proba=PROBA)
    assert set(got) == set(METRICS_BY_TASK["classification"])
    expected_log_loss = -(math.log(0.9) + math.log(0.8) + math.log(0.4) + math.log(0.5)) / 4
    assert got["log_loss"] == pytest.approx(expected_log_loss)
    assert got["roc_auc"] == pytest.approx(0.75)


def test_multiclass_roc_auc_is_one_vs_rest_macro() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 2])
    proba = rng.dirichlet(np.ones(3), size=len(y))
    got = compute_metric("classification", "roc_auc", y, proba.argmax(1), proba)
    assert got == pytest.approx(roc_auc_score(y, proba, multi_class="ovr", average="macro"))


def test_class_missing_from_validation_split() -> None:
    # Three classes known, only two present: log_loss and roc_auc still work.
    y = np.array([0, 1, 0, 1])
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1]])
    got = compute_metrics("classification", y, proba.argmax(1), proba=proba, n_classes=3)
    assert got["accuracy"] == 1.0
    assert got["roc_auc"] == pytest.approx(1.0)
    assert got["log_loss"] == pytest.approx(-np.mean(np.log([0.7, 0.8, 0.6, 0.7])))


def test_regression() -> None:
    got = compute_metrics("regression", np.array([1.0, 2, 3, 4]), np.array([1.0, 2, 3, 6]))
    assert got == pytest.approx({"rmse": 1.0, "mae": 0.5, "r2": 1 - 4 / 5})


def test_regression_nan_prediction_gives_nan() -> None:
    got = compute_metric("regression", "rmse", np.array([1.0, 2.0]), np.array([1.0, np.nan]))
    assert math.isnan(got)


@pytest.mark.parametrize(
    ("name", "direction"),
    [
        ("accuracy", "maximize"),
        ("f1", "maximize"),
        ("roc_auc", "maximize"),
        ("r2", "maximize"),
        ("log_loss", "minimize"),
        ("rmse", "minimize"),
        ("val_rmse", "minimize"),
        ("test_accuracy", "maximize"),
        ("val_mae", "minimize"),
    ],
)
def test_metric_direction(name: str, direction: str) -> None:
    assert metric_direction(name) == direction


def test_unknown_metric_names_the_valid_ones() -> None:
    with pytest.raises(KubetuneError, match=r"accurcy.*accuracy.*rmse"):
        metric_direction("accurcy")
    with pytest.raises(KubetuneError, match="valid metrics"):
        compute_metric("classification", "val_precision", Y_TRUE, Y_PRED)


def test_metric_of_the_other_task_is_rejected() -> None:
    with pytest.raises(KubetuneError, match=r"does not apply to classification.*accuracy"):
        compute_metric("classification", "rmse", Y_TRUE, Y_PRED)


def test_probability_metric_without_probabilities() -> None:
    with pytest.raises(InvalidConfigError, match=r"log_loss.*probabilities"):
        compute_metric("classification", "val_log_loss", Y_TRUE, Y_PRED)


def test_count_classes() -> None:
    assert count_classes(("a", "b", "c"), np.array([0, 1])) == 3
    assert count_classes((), np.array([0, 1]), np.array([4])) == 5
