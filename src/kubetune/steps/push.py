"""Step: push the final model to the model repository, gated against the champion.

A new version is always stored (immutable, with its manifest). The ``production`` alias
moves to it only when its test score is at least as good as the current production
version's on the same test data — the champion gate — so a worse re-tuning run never
replaces a better model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kubetune.core.spec import ExperimentSpec
from kubetune.data import Dataset
from kubetune.errors import DataError, KubetuneError, RepositoryError
from kubetune.inference import LoadedModel, load_model_dir
from kubetune.repository import PRODUCTION, Manifest, ModelRepository, open_repository
from kubetune.repository.repository import AliasMovedError
from kubetune.storage.scratch import scratch_dir
from kubetune.trainers import TrainedModel, compute_metrics

_GATE_ATTEMPTS = 20


@dataclass(frozen=True)
class PushResult:
    manifest: Manifest
    uri: str
    promoted: bool
    gate: str  # why the alias moved or not


def champion_gate(
    repo: ModelRepository,
    spec: ExperimentSpec,
    metric: str,
    value: float,
    *,
    data: Dataset | None = None,
) -> tuple[bool, str]:
    """Whether the new model should become ``production``, and why.

    When the data changed since the champion was pushed (another fingerprint: new rows,
    another split, other columns), its recorded score is not comparable, so the champion is
    pulled and scored again on this run's raw test rows through its own stored encoder.
    """
    name, direction = spec.name, spec.direction
    try:
        has_champion = PRODUCTION in repo.aliases(name)
    except RepositoryError as exc:
        return True, f"promoted: the {PRODUCTION} alias cannot be read ({exc})"
    if not has_champion:
        return True, "promoted to production: there was no production model yet"
    try:
        current = repo.get(name, PRODUCTION)
    except RepositoryError as exc:  # tampered or missing manifest: not a champion to keep
        return True, f"promoted: the {PRODUCTION} model cannot be read ({exc})"
    champion = current.metrics.get(metric)
    basis = "recorded"
    if data is not None and current.data_fingerprint != data.fingerprint:
        champion, problem = _rescore(repo, current, spec, data, metric)
        basis = "re-scored on this run's test split"
        if champion is None:
            return True, f"promoted: production v{current.version} {problem}"
    if champion is None:
        return True, f"production v{current.version} has no {metric}"
    better = value >= champion if direction == "maximize" else value <= champion
    verdict = "promoted" if better else "kept the champion"
    return better, (
        f"{verdict}: {metric} {value:.4g} vs production v{current.version} {champion:.4g} ({basis})"
    )


def _rescore(
    repo: ModelRepository, current: Manifest, spec: ExperimentSpec, data: Dataset, metric: str
) -> tuple[float | None, str]:
    """The champion's ``metric`` on this run's test rows, through its *own* stored encoder;
    or None and why it cannot be scored (never an exception: the run's model is safe)."""
    options = spec.trainer.options if spec.trainer and spec.trainer.kind == current.trainer else {}
    with scratch_dir("champion") as tmp:
        try:
            repo.pull(current.name, current.version, Path(tmp) / "model")
            champion = load_model_dir(
                Path(tmp) / "model",
                trainer=current.trainer,
                options=options,
                where=f"{current.name} v{current.version} of {repo.uri}",
            )
        except KubetuneError as exc:
            return None, f"cannot be loaded: {exc}"
        try:
            value = score_champion(champion, data, metric)
        # Broad on purpose: a champion may be a custom model running user code, and whatever
        # it raises must not lose this run's model, which is already stored.
        except Exception as exc:
            detail = str(exc) if isinstance(exc, KubetuneError) else f"{type(exc).__name__}: {exc}"
            return None, f"cannot be scored on the new data: {detail}"
        return value, "" if value is not None else f"has no {metric} on the new data"


def score_champion(champion: LoadedModel, data: Dataset, metric: str) -> float | None:
    """``metric`` of a stored model on ``data``'s test split, from the raw test rows."""
    if champion.encoder is None:
        # Stored before kubetune kept the feature layout: only this run's encoding can feed
        # it, and nothing but the width can be checked.
        width = _input_width(champion.model)
        if width is not None and width != data.n_features:
            raise DataError(
                f"it was stored without its feature layout and takes {width} features, not"
                f" {data.n_features}"
            )
        X = data.X_test
    else:
        if data.raw_test is None:
            raise DataError("this run kept no raw test rows")
        X = champion.encoder.transform(data.raw_test)
    pred = np.asarray(champion.model.predict(X))
    proba = champion.model.predict_proba(X) if data.task == "classification" else None
    if data.task == "classification" and champion.classes:
        pred, proba = _to_run_classes(champion.classes, data.class_labels, pred, proba)
    scores = compute_metrics(data.task, data.y_test, pred, proba, data.n_classes or None)
    value = scores.get(metric.removeprefix("test_"))
    return None if value is None else float(value)


def _to_run_classes(
    labels: tuple[object, ...],
    run_labels: tuple[str, ...],
    pred: np.ndarray,
    proba: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Champion class indices -> this run's (labels compared as text, like the data)."""
    names = [str(label) for label in labels]
    if sorted(names) != sorted(run_labels):
        raise DataError(f"its classes {names} differ from this run's {list(run_labels)}")
    order = np.array([run_labels.index(name) for name in names], dtype=np.int64)
    mapped = order[pred.astype(np.int64)]
    if proba is not None:
        reordered = np.zeros_like(proba)
        reordered[:, order] = proba
        proba = reordered
    return mapped, proba


def _input_width(model: TrainedModel) -> int | None:
    estimator = getattr(model, "estimator", None)
    if estimator is not None and hasattr(estimator, "n_features_in_"):
        return int(estimator.n_features_in_)
    architecture = getattr(model, "architecture", None)
    if isinstance(architecture, dict) and isinstance(architecture.get("input_dim"), int):
        return int(architecture["input_dim"])
    return None


def push(
    spec: ExperimentSpec,
    model: TrainedModel,
    *,
    repo_uri: str,
    params: dict[str, Any],
    metrics: dict[str, float],
    data_fingerprint: str,
    gate_metric: str,
    extra: dict[str, Any] | None = None,
    data: Dataset | None = None,
    base_dir: Path | None = None,
) -> PushResult:
    """Store ``model`` as a new version in the repository at ``repo_uri`` (a relative path
    is relative to ``base_dir``, default the current directory) and gate the alias."""
    repo = open_repository(repo_uri, base_dir=base_dir or Path.cwd())
    assert spec.trainer is not None  # noqa: S101 (type narrowing)
    with scratch_dir("model") as tmp:
        model.save(Path(tmp))
        if data is not None and data.encoder is not None:
            # Raw rows -> features travels with the model (covered by the manifest's hashes).
            data.encoder.save(Path(tmp))
        manifest = repo.push(
            spec.name,
            Path(tmp),
            params=params,
            metrics=metrics,
            data_fingerprint=data_fingerprint,
            study=spec.name,
            trainer=spec.trainer.kind,
            extra=extra,
        )
    # Check, then act only if nothing changed in between: a concurrent run may promote its
    # own model while ours is being judged, and ours must then beat that one instead.
    for _ in range(_GATE_ATTEMPTS):
        seen = repo.aliases(spec.name).get(PRODUCTION)
        promote, reason = champion_gate(repo, spec, gate_metric, metrics[gate_metric], data=data)
        if not promote:
            break
        try:
            repo.set_alias(spec.name, PRODUCTION, manifest.version, expect=seen)
            break
        except AliasMovedError:
            continue
    else:
        raise RepositoryError(
            f"the {PRODUCTION} alias of {spec.name!r} kept moving during {_GATE_ATTEMPTS}"
            f" champion gates; version {manifest.version} is stored but not promoted"
        )
    return PushResult(manifest=manifest, uri=repo_uri, promoted=promote, gate=reason)
