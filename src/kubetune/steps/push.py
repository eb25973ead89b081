"""Step: push the final model to the model repository, gated against the champion.

A new version is always stored (immutable, with its manifest). The ``production`` alias
moves to it only when its test score is at least as good as the current production
version's — the champion gate — so a worse re-tuning run never replaces a better model.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubetune.core.spec import ExperimentSpec
from kubetune.errors import RepositoryError
from kubetune.repository import Manifest, ModelRepository, open_repository
from kubetune.trainers import TrainedModel

PRODUCTION = "production"


@dataclass(frozen=True)
class PushResult:
    manifest: Manifest
    uri: str
    promoted: bool
    gate: str  # why the alias moved or not


def champion_gate(
    repo: ModelRepository, name: str, metric: str, value: float, direction: str
) -> tuple[bool, str]:
    try:
        current = repo.get(name, PRODUCTION)
    except RepositoryError:
        return True, "no production model yet"
    champion = current.metrics.get(metric)
    if champion is None:
        return True, f"production v{current.version} has no {metric}"
    better = value >= champion if direction == "maximize" else value <= champion
    verdict = "promoted" if better else "kept the champion"
    return better, (
        f"{verdict}: {metric} {value:.4g} vs production v{current.version} {champion:.4g}"
    )


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
) -> PushResult:
    repo = open_repository(repo_uri, base_dir=Path.cwd())
    assert spec.trainer is not None
    with tempfile.TemporaryDirectory(prefix="kubetune-model-") as tmp:
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
    promote, reason = champion_gate(
        repo, spec.name, gate_metric, metrics[gate_metric], spec.direction
    )
    if promote:
        repo.set_alias(spec.name, PRODUCTION, manifest.version)
    return PushResult(manifest=manifest, uri=repo_uri, promoted=promote, gate=reason)
