"""What every pipeline step reads first: the spec, its overrides, the study and the data.

A pipeline task gets its inputs as KFP parameters (strings and numbers) and artifacts
(files), not as Python objects. This module turns them back into what the plain steps take,
the same way in every task, so the tasks of one run agree on the spec and the data:

- the spec is inline YAML or a URI (a path, ``file://``, ``s3://``), plus the pipeline's
  overrides (data URI, trial count, wall time; an empty value keeps the spec's);
- the study storage comes from ``KUBETUNE_STORAGE`` (a Kubernetes Secret in a cluster: a
  database URL holds a password, so it is never a pipeline parameter), else the spec;
- the data travels as a *reference* (source URI + sha256 fingerprint, the ``Dataset``
  artifact): each task loads the source again and refuses data whose fingerprint changed
  since the retrieve task pinned it, so every trial of a run sees the same rows.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubetune.core.metrics import validation_key
from kubetune.core.paths import uri_scheme
from kubetune.core.run_context import RunContext
from kubetune.core.spec import ExperimentSpec, load_spec
from kubetune.core.warm_start import study_family
from kubetune.errors import DataError, SpecError

if TYPE_CHECKING:  # the data stack (pandas, scikit-learn) loads only in tasks that need data
    from kubetune.data import Dataset

__all__ = [
    "ENV_ARTIFACTS",
    "ENV_MODEL_REPO",
    "ENV_STORAGE",
    "DataRef",
    "PipelineOverrides",
    "load_data",
    "portable_spec",
    "resolve_spec",
    "run_context",
    "shared_study_check",
]

ENV_STORAGE = "KUBETUNE_STORAGE"
ENV_MODEL_REPO = "KUBETUNE_MODEL_REPO"
# The trial artifact store (checkpoints of promoted configs): every trial task of a run
# must reach the same one; the spec's ``artifacts`` (e.g. s3://) or this variable.
ENV_ARTIFACTS = "KUBETUNE_ARTIFACTS"
_DATA_REF_FILE = "data-ref.json"


@dataclass(frozen=True)
class PipelineOverrides:
    """The pipeline parameters that change the spec; empty/zero keeps the spec's value."""

    data_uri: str = ""
    max_trials: int = 0
    timeout: str = ""


def resolve_spec(
    spec: str,
    overrides: PipelineOverrides | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> ExperimentSpec:
    """The validated spec of a pipeline run, with its overrides and the study storage.

    ``spec`` is inline YAML (a mapping) or the URI of a spec file. Relative data paths of
    an inline spec are relative to the working directory.
    """
    environ = os.environ if environ is None else environ
    text = spec.strip()
    if not text:
        raise SpecError("spec: the pipeline parameter 'spec' is empty; give YAML or a URI")
    inline = "\n" in text or text.startswith("{")  # a one-line path or URI otherwise
    parsed = _inline_spec(text) if inline else _spec_from_uri(text)
    parsed = _apply_overrides(parsed, overrides or PipelineOverrides())
    storage = environ.get(ENV_STORAGE) or None
    if storage:
        parsed = parsed.replaced({"storage": storage}, source="spec")
    return _normalize_objective(parsed)


def _normalize_objective(spec: ExperimentSpec) -> ExperimentSpec:
    """``steps.search.normalize_objective`` (the objective spelled as trials report it)
    without importing the trainers: suggest and record tasks start faster."""
    key = validation_key(spec.objective.metric)
    if key == spec.objective.metric:
        return spec
    return spec.updated("objective", {"metric": key})


def _inline_spec(text: str) -> ExperimentSpec:
    # load_spec applies every check of a spec file (size, YAML safety, duplicate keys).
    with tempfile.TemporaryDirectory(prefix="kubetune-spec-") as tmp:
        path = Path(tmp) / "spec.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            spec = load_spec(path)
        except SpecError as exc:
            raise SpecError(str(exc).replace(str(path), "spec (inline)")) from None
    return spec.with_base_dir(Path.cwd())


def _spec_from_uri(uri: str) -> ExperimentSpec:
    if uri_scheme(uri) in (None, "file"):
        from kubetune.core.paths import local_path

        path = local_path(uri, Path.cwd())
        if path is None:  # local_path gives None only for non-local URIs, handled above
            raise ValueError(f"not a local path: {uri}")
        return load_spec(path)
    from kubetune.storage import StorageError, open_object

    try:
        store, key = open_object(uri)
        data = store.get_bytes(key)
    except StorageError as exc:
        raise SpecError(f"spec: cannot read {uri}: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="kubetune-spec-") as tmp:
        path = Path(tmp) / "spec.yaml"
        path.write_bytes(data)
        try:
            spec = load_spec(path)
        except SpecError as exc:
            raise SpecError(str(exc).replace(str(path), uri)) from None
    return spec.with_base_dir(Path.cwd())


def _apply_overrides(spec: ExperimentSpec, overrides: PipelineOverrides) -> ExperimentSpec:
    if overrides.data_uri:
        if spec.data is None:
            raise SpecError("data_uri: the spec has no data section to point elsewhere")
        spec = spec.updated("data", {"source": overrides.data_uri}, source="data_uri")
    limits: dict[str, Any] = {}
    if overrides.max_trials:
        if overrides.max_trials < 0:
            raise SpecError(f"max_trials: must be >= 1, got {overrides.max_trials}")
        limits["max_trials"] = overrides.max_trials
    if overrides.timeout:
        limits["timeout"] = overrides.timeout  # parsed (and refused if bad) by the spec
    if limits:
        spec = spec.updated("limits", limits, source="pipeline parameters")
    return spec


def run_context(
    spec: ExperimentSpec, model_repo: str = "", data_fingerprint: str | None = None
) -> RunContext:
    """Where this run's study, run folder and model repository are. With a ``retune:``
    section and the run's data fingerprint, the study is the one of that data version
    (as ``kubetune run`` re-tunes), so every task of a run finds the same study."""
    repo = model_repo or os.environ.get(ENV_MODEL_REPO) or None
    artifacts = os.environ.get(ENV_ARTIFACTS) or None
    context = RunContext.from_spec(spec, model_repo=repo, artifacts=artifacts)
    if spec.retune is not None and data_fingerprint:
        context = context.for_study(study_family(spec.name, data_fingerprint))
    return context


def shared_study_check(context: RunContext, *, environ: Mapping[str, str] | None = None) -> None:
    """Refuse a study file inside a pod: the tasks of a looping pipeline run in different
    pods, and each would otherwise see its own empty study."""
    environ = os.environ if environ is None else environ
    storage = context.study_storage
    in_pod = bool(environ.get("KUBERNETES_SERVICE_HOST"))
    if in_pod and (storage is None or uri_scheme(storage) is None):
        raise SpecError(
            f"storage: the study is a local file ({storage}) in a pod; give the pipeline a"
            f" database URL through the {ENV_STORAGE} Secret (kubetune pipeline compile"
            " --db-secret) so every task shares one study"
        )


@dataclass(frozen=True)
class DataRef:
    """What the ``Dataset`` artifact holds: which data, pinned by its fingerprint."""

    source: str
    fingerprint: str
    name: str
    task: str
    rows: dict[str, int]
    features: int
    classes: list[str]

    def write(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / _DATA_REF_FILE
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True))
        return path

    @classmethod
    def read(cls, directory: str | Path) -> DataRef:
        path = Path(directory) / _DATA_REF_FILE
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise DataError(f"{path}: not a kubetune data reference ({exc})") from None

    @classmethod
    def of(cls, spec: ExperimentSpec, data: Dataset) -> DataRef:
        if spec.data is None:
            raise ValueError("a data reference needs a data section")
        return cls(
            source=spec.data.source,
            fingerprint=data.fingerprint,
            name=data.name,
            task=data.task,
            rows={
                "train": len(data.X_train),
                "validation": len(data.X_val),
                "test": len(data.X_test),
            },
            features=data.n_features,
            classes=list(data.class_labels),
        )

    def metadata(self) -> dict[str, Any]:
        """Shown on the artifact in the KFP UI."""
        return {
            "source": self.source,
            "fingerprint": self.fingerprint,
            "task": self.task,
            "rows_train": self.rows["train"],
            "rows_validation": self.rows["validation"],
            "rows_test": self.rows["test"],
            "features": self.features,
        }


def load_data(spec: ExperimentSpec, ref: DataRef | None = None) -> Dataset:
    """The spec's data; with ``ref``, refused unless it is the data the run pinned."""
    from kubetune.steps.retrieve import retrieve

    data = retrieve(spec)
    if ref is not None and data.fingerprint != ref.fingerprint:
        raise DataError(
            f"data: {ref.source} changed during this pipeline run (fingerprint"
            f" {data.fingerprint[:12]} now, {ref.fingerprint[:12]} when retrieved); run the"
            " pipeline again"
        )
    return data


def portable_spec(spec: ExperimentSpec) -> str:
    """The spec as JSON for the run's later tasks: local data paths made absolute (later
    tasks have no spec folder). Give it a spec resolved without the environment: a study
    database URL from ``KUBETUNE_STORAGE`` may hold a password and must not become a task
    output; each task reads it from its own environment."""
    data = spec.model_dump(mode="json", exclude_none=True)
    source = spec.data.source if spec.data is not None else None
    if source is not None and not source.startswith("sklearn:"):
        from kubetune.core.paths import local_path

        path = local_path(source, spec.base_dir)
        if path is not None:
            data["data"]["source"] = str(path)
    return json.dumps(data, sort_keys=True)
