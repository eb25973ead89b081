"""``--output json`` views: what the text views show, as data a script can read.

stdout carries exactly one JSON document; progress and errors stay on stderr.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from kubetune.core.plan import SearchPlan
from kubetune.core.spec import ExperimentSpec
from kubetune.repository.repository import ModelRepository

__all__ = ["model_show", "models_list", "print_json", "validate_view"]

_CONFIG_CAP = 100_000


def print_json(data: Any) -> None:
    # Strict JSON (no NaN) so any reader accepts it.
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")


def validate_view(path: str, spec: ExperimentSpec, plan: SearchPlan) -> dict[str, Any]:
    size = spec.space.cardinality(cap=_CONFIG_CAP)
    fid = spec.fidelity
    return {
        "spec": path,
        "valid": True,
        "experiment": spec.name,
        "objective": {
            "metric": spec.objective.metric,
            "direction": spec.direction,
            "target": spec.objective.target,
        },
        "search_space": dict(spec.space.describe()),
        "configs": size if size is not None and size <= _CONFIG_CAP else None,
        "strategy": {"name": plan.strategy, "reason": plan.strategy_reason},
        "fidelity": None
        if fid is None
        else {
            "param": fid.param,
            "min": fid.min,
            "max": fid.max,
            "reduction_factor": fid.reduction_factor,
            "scheduler": plan.scheduler,
        },
        "stop_conditions": [type(c).__name__ for c in plan.stop_conditions],
        "executor": {"kind": spec.executor.kind, **spec.executor.options},
    }


def models_list(repo: ModelRepository, name: str | None = None) -> dict[str, Any]:
    """All models with their latest version and aliases, or every version of ``name``."""
    if name is None:
        models = []
        for model in repo.models():
            versions = repo.versions(model, skip_malformed=True)
            models.append(
                {
                    "name": model,
                    "versions": len(versions),
                    "latest": versions[-1].version if versions else None,
                    "aliases": repo.aliases(model),
                    "updated": versions[-1].created_at if versions else None,
                }
            )
        return {"repository": repo.uri, "models": models}
    aliases = repo.aliases(name)
    return {
        "repository": repo.uri,
        "model": name,
        "versions": [_manifest(m.to_dict(), aliases) for m in repo.versions(name)],
    }


def model_show(repo: ModelRepository, name: str, ref: int | str = "latest") -> dict[str, Any]:
    """One version's manifest, with the aliases that point at it and the repository."""
    manifest = repo.get(name, ref)
    return {"repository": repo.uri, **_manifest(manifest.to_dict(), repo.aliases(name))}


def _manifest(data: dict[str, Any], aliases: dict[str, int]) -> dict[str, Any]:
    return {**data, "aliases": sorted(a for a, v in aliases.items() if v == data["version"])}
