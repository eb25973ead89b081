"""Step: decide how a recurring re-tuning run goes, before it searches.

A scheduled run of an experiment with a ``retune:`` section

1. stops early, pushing nothing, when its data is the data the production model was
   trained on (same fingerprint) - unless forced;
2. otherwise searches in a study of its own data version (``<name>.<data hash>``) that
   starts from the best configs earlier runs found: those of the experiment's other studies
   in the same storage, else the params recorded in the model repository's manifests;
3. and records in the pushed version's manifest which run, schedule and data produced it
   (:class:`Provenance`, under ``extra.provenance``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubetune.core.run_context import RunContext
from kubetune.core.spec import ExperimentSpec
from kubetune.core.warm_start import Candidate, rank, study_family
from kubetune.data import Dataset
from kubetune.errors import RepositoryError
from kubetune.repository import PRODUCTION, ModelRepository
from kubetune.repository.manifest import utc_now

__all__ = [
    "ENV_RUN_ID",
    "ENV_SCHEDULE",
    "Provenance",
    "RetunePlan",
    "manifest_candidates",
    "plan_retune",
]

# KFP_RUN_ID is what a pipeline component is given (dsl.PIPELINE_JOB_ID_PLACEHOLDER);
# KUBETUNE_RUN_ID / KUBETUNE_SCHEDULE name a run started by anything else (cron, CI).
ENV_RUN_ID = ("KUBETUNE_RUN_ID", "KFP_RUN_ID")
ENV_SCHEDULE = "KUBETUNE_SCHEDULE"


@dataclass(frozen=True)
class Provenance:
    """Which run, schedule and data produced a model version."""

    run_id: str | None = None
    schedule: str | None = None
    run_name: str | None = None  # a KFP run's name (the run id is its uuid)
    started_at: str = field(default_factory=utc_now)

    @classmethod
    def resolve(
        cls,
        *,
        run_id: str | None = None,
        schedule: str | None = None,
        run_name: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Provenance:
        """Explicit values win over the environment."""
        env = os.environ if environ is None else environ
        found_id = run_id or next((env[n] for n in ENV_RUN_ID if env.get(n)), None)
        return cls(
            run_id=found_id,
            schedule=schedule or env.get(ENV_SCHEDULE) or None,
            run_name=run_name or None,
        )

    def record(
        self, spec: ExperimentSpec, data: Dataset, *, study: str, warm_started: int
    ) -> dict[str, Any]:
        """The manifest's ``extra.provenance``."""
        return {
            "run_id": self.run_id,
            "run_name": self.run_name,
            "schedule": self.schedule,
            "started_at": self.started_at,
            "data": {
                "source": spec.data.source if spec.data else None,
                "fingerprint": data.fingerprint,
                "rows": {
                    "train": len(data.X_train),
                    "validation": len(data.X_val),
                    "test": len(data.X_test),
                },
            },
            "study": study,
            "warm_started": warm_started,
        }


@dataclass(frozen=True)
class RetunePlan:
    skip: str | None
    """Why the run stops before searching; None: it searches."""
    context: RunContext
    """Where it searches (a study of its data version)."""
    warm_start: int = 0
    fallback: list[Candidate] = field(default_factory=list)
    """The repository's configs, used when the storage holds no earlier study."""


def plan_retune(
    spec: ExperimentSpec,
    data: Dataset,
    repo: ModelRepository,
    context: RunContext,
    *,
    force: bool = False,
) -> RetunePlan:
    """How this run goes; ``spec.retune`` must be set."""
    retune = spec.retune
    if retune is None:
        raise ValueError("plan_retune needs a spec with a retune: section")
    champion = _champion(repo, spec.name)
    if (
        champion is not None
        and champion[1] == data.fingerprint
        and retune.skip_unchanged_data
        and not force
    ):
        return RetunePlan(
            skip=(
                f"data unchanged since production v{champion[0]} (fingerprint"
                f" {data.fingerprint[:12]}): nothing to re-tune, nothing pushed"
                " (run with --force to re-tune anyway)"
            ),
            context=context,
        )
    fallback = manifest_candidates(repo, spec) if retune.warm_start else []
    return RetunePlan(
        skip=None,
        context=context.for_study(study_family(spec.name, data.fingerprint)),
        warm_start=retune.warm_start,
        fallback=fallback,
    )


def _champion(repo: ModelRepository, name: str) -> tuple[int, str] | None:
    """(version, data fingerprint) of the production model, if there is a readable one."""
    try:
        if PRODUCTION not in repo.aliases(name):
            return None
        manifest = repo.get(name, PRODUCTION)
    except RepositoryError:
        return None  # no readable champion: re-tune (the gate handles it the same way)
    return manifest.version, manifest.data_fingerprint


def manifest_candidates(repo: ModelRepository, spec: ExperimentSpec) -> list[Candidate]:
    """Each stored version's params, best validation score first (what the search
    optimised, e.g. ``val_accuracy``); versions without it go last, newest first."""
    try:
        manifests = repo.versions(spec.name, skip_malformed=True)
    except RepositoryError:
        return []
    metric = spec.objective.metric
    candidates = [
        Candidate(m.params, _number(m.metrics.get(metric)), f"{spec.name} v{m.version}")
        for m in sorted(manifests, key=lambda m: -m.version)
        if m.params
    ]
    return rank(candidates, spec.direction)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
