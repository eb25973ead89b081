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

from kubetune.core.spec import ExperimentSpec
from kubetune.data import Dataset
from kubetune.errors import KubetuneError, RepositoryError
from kubetune.repository import PRODUCTION, Manifest, ModelRepository, open_repository
from kubetune.repository.repository import AliasMovedError
from kubetune.steps.trial import evaluate_split
from kubetune.storage.scratch import scratch_dir
from kubetune.trainers import TrainedModel, get_trainer

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
    another split), its recorded score is not comparable, so the champion is pulled and
    scored again on this run's test split.
    """
    name, direction = spec.name, spec.direction
    try:
        current = repo.get(name, PRODUCTION)
    except RepositoryError:
        return True, "no production model yet"
    champion = current.metrics.get(metric)
    basis = "recorded"
    if data is not None and current.data_fingerprint != data.fingerprint:
        champion = _rescore(repo, current, spec, data, metric)
        basis = "re-scored on this run's test split"
        if champion is None:
            return True, (
                f"promoted: production v{current.version} cannot be scored on the new data"
            )
    if champion is None:
        return True, f"production v{current.version} has no {metric}"
    better = value >= champion if direction == "maximize" else value <= champion
    verdict = "promoted" if better else "kept the champion"
    return better, (
        f"{verdict}: {metric} {value:.4g} vs production v{current.version} {champion:.4g} ({basis})"
    )


def _rescore(
    repo: ModelRepository, current: Manifest, spec: ExperimentSpec, data: Dataset, metric: str
) -> float | None:
    options = spec.trainer.options if spec.trainer and spec.trainer.kind == current.trainer else {}
    try:
        with scratch_dir("champion") as tmp:
            repo.pull(current.name, current.version, Path(tmp) / "model")
            model = get_trainer(current.trainer, options).load(Path(tmp) / "model")
            return evaluate_split(model, data, "test").get(metric)
    except (KubetuneError, ValueError, RuntimeError, KeyError):
        return None  # e.g. the features changed: the old model cannot serve this data


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
    assert spec.trainer is not None
    with scratch_dir("model") as tmp:
        model.save(Path(tmp))
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
