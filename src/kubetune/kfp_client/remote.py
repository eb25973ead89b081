"""Upload, run, schedule and inspect compiled pipelines on a Kubeflow Pipelines API.

A thin layer over ``kfp.Client``: it resolves names (pipeline, version, experiment) to the
ids the API wants, types the run parameters, checks a schedule before sending it, and
returns plain records the CLI prints. Every API failure becomes a one-line KfpError.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from kubetune.kfp_client.connection import KfpError, KfpSettings, connect, kfp_errors
from kubetune.kfp_client.cron import validate_cron
from kubetune.kfp_client.params import parse_params

__all__ = [
    "KfpRemote",
    "PipelineRef",
    "RecurringRunInfo",
    "RunInfo",
    "UploadResult",
    "load_pipeline_file",
    "parse_time",
]

_MAX_PIPELINE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class PipelineRef:
    """Which pipeline to run: a compiled file, or an uploaded pipeline by name (and
    version name; default its newest version)."""

    file: str | None = None
    name: str | None = None
    version: str | None = None

    def __post_init__(self) -> None:
        if (self.file is None) == (self.name is None):
            raise KfpError("give either a compiled pipeline FILE or --pipeline NAME, not both")
        if self.version is not None and self.name is None:
            raise KfpError("--version needs --pipeline NAME (a file is its own version)")


@dataclass(frozen=True)
class UploadResult:
    pipeline_id: str
    pipeline_name: str
    version_id: str | None
    version_name: str | None
    new_pipeline: bool


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    name: str
    state: str
    experiment_id: str | None = None
    created_at: str | None = None
    finished_at: str | None = None
    error: str | None = None
    recurring_run_id: str | None = None
    pipeline: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    tasks: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["tasks"] = [{"name": n, "state": s} for n, s in self.tasks]
        return data


@dataclass(frozen=True)
class RecurringRunInfo:
    recurring_run_id: str
    name: str
    status: str
    trigger: str
    max_concurrency: int | None
    no_catchup: bool | None
    experiment_id: str | None = None
    created_at: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def load_pipeline_file(path: str | Path) -> dict[str, Any]:
    """The pipeline spec (first YAML document) of a compiled KFP IR file; KfpError naming
    the file when it is missing or is not a compiled pipeline."""
    path = Path(path)
    try:
        if path.stat().st_size > _MAX_PIPELINE_BYTES:
            raise KfpError(f"{path}: larger than {_MAX_PIPELINE_BYTES // 2**20} MiB")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KfpError(f"{path}: pipeline file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KfpError(f"{path}: cannot read the pipeline file ({exc})") from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise KfpError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    spec = docs[0] if docs else None
    if not isinstance(spec, dict) or "pipelineInfo" not in spec or "root" not in spec:
        raise KfpError(
            f"{path}: not a compiled KFP pipeline (no pipelineInfo/root); compile it first,"
            " e.g. kubetune pipeline compile SPEC -o pipeline.yaml"
        )
    return spec


def parse_time(value: str, flag: str) -> str:
    """An RFC 3339 time for KFP (UTC, ``Z``); a time without a zone is taken as UTC."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise KfpError(
            f"{flag} {value!r}: not a date/time; use RFC 3339, e.g. 2026-01-31T03:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _equals(key: str, value: str) -> str:
    return json.dumps(
        # EQUALS by its enum number, as kfp.Client's own filters send it
        {"predicates": [{"operation": 1, "key": key, "stringValue": value}]}
    )


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


class KfpRemote:
    """The pipeline operations against one KFP API (``client`` injectable for tests)."""

    def __init__(self, settings: KfpSettings, client: Any | None = None) -> None:
        self.settings = settings
        self._client = client if client is not None else connect(settings)

    def _call(self, what: str) -> Any:
        return kfp_errors(self.settings, what=what)

    # --- pipelines ----------------------------------------------------------------------
    def pipeline_id(self, name: str) -> str | None:
        with self._call(f"looking up pipeline {name!r}"):
            try:
                return self._client.get_pipeline_id(name)
            except ValueError as exc:  # several pipelines with that name
                raise KfpError(str(exc)) from None

    def upload(
        self, path: str, name: str, *, version: str | None = None, description: str | None = None
    ) -> UploadResult:
        """A new pipeline ``name``, or a new version of it when it exists (named
        ``version``, default the upload time and the file's short sha256)."""
        load_pipeline_file(path)  # a clear error before anything is sent
        existing = self.pipeline_id(name)
        if existing is None:
            with self._call(f"uploading {path} as pipeline {name!r}"):
                pipeline = self._client.upload_pipeline(
                    path,
                    pipeline_name=name,
                    description=description,
                    namespace=self.settings.namespace,
                )
            first = self._latest_version(pipeline.pipeline_id)
            return UploadResult(
                pipeline_id=pipeline.pipeline_id,
                pipeline_name=name,
                version_id=first.pipeline_version_id if first else None,
                version_name=first.display_name if first else None,
                new_pipeline=True,
            )
        version = version or _default_version_name(path)
        with self._call(f"uploading {path} as version {version!r} of {name!r}"):
            made = self._client.upload_pipeline_version(
                path,
                pipeline_version_name=version,
                pipeline_id=existing,
                description=description,
            )
        return UploadResult(
            pipeline_id=existing,
            pipeline_name=name,
            version_id=made.pipeline_version_id,
            version_name=made.display_name or version,
            new_pipeline=False,
        )

    def _latest_version(self, pipeline_id: str) -> Any | None:
        with self._call("listing pipeline versions"):
            listing = self._client.list_pipeline_versions(
                pipeline_id, page_size=1, sort_by="created_at desc"
            )
        versions = listing.pipeline_versions or []
        return versions[0] if versions else None

    def _version(self, ref: PipelineRef) -> tuple[str, Any]:
        """(pipeline id, version object) of a by-name reference."""
        if ref.name is None:  # a by-file reference has no name to look up
            raise KfpError("internal: a pipeline version is looked up by name only")
        pipeline_id = self.pipeline_id(ref.name)
        if pipeline_id is None:
            raise KfpError(
                f"no pipeline named {ref.name!r} in Kubeflow Pipelines at {self.settings.where};"
                f" upload it first: kubetune pipeline upload FILE --name {ref.name}"
            )
        if ref.version is None:
            found = self._latest_version(pipeline_id)
            if found is None:
                raise KfpError(f"pipeline {ref.name!r} has no version")
            return pipeline_id, found
        with self._call(f"looking up version {ref.version!r} of {ref.name!r}"):
            listing = self._client.list_pipeline_versions(
                pipeline_id, filter=_equals("display_name", ref.version), page_size=2
            )
        versions = listing.pipeline_versions or []
        if not versions:
            raise KfpError(f"pipeline {ref.name!r} has no version named {ref.version!r}")
        return pipeline_id, versions[0]

    def _target(self, ref: PipelineRef) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """kfp.Client keyword arguments naming the pipeline, and its IR (for the
        parameter types) when it is known."""
        if ref.file is not None:
            return {"pipeline_package_path": ref.file}, load_pipeline_file(ref.file)
        pipeline_id, version = self._version(ref)
        spec = version.pipeline_spec if isinstance(version.pipeline_spec, dict) else None
        if spec is not None and "pipeline_spec" in spec:  # IR with a platform spec
            spec = spec["pipeline_spec"]
        return {"pipeline_id": pipeline_id, "version_id": version.pipeline_version_id}, spec

    def _experiment_id(self, name: str) -> str:
        with self._call(f"opening experiment {name!r}"):
            experiment = self._client.create_experiment(name, namespace=self.settings.namespace)
        return str(experiment.experiment_id)

    # --- runs ---------------------------------------------------------------------------
    def submit(
        self,
        ref: PipelineRef,
        *,
        experiment: str,
        run_name: str | None = None,
        params: Sequence[str] = (),
        service_account: str | None = None,
        enable_caching: bool | None = None,
    ) -> RunInfo:
        """One run of the pipeline in ``experiment`` (created when missing)."""
        if enable_caching is not None and ref.file is None:
            # kfp.Client applies a caching override only to a pipeline sent as a file; for
            # an uploaded version it would be dropped without a word.
            raise KfpError(
                "--cache applies to a pipeline FILE only; an uploaded pipeline runs with the"
                " caching it was compiled with"
            )
        target, spec = self._target(ref)
        values = parse_params(params, spec)
        experiment_id = self._experiment_id(experiment)
        name = run_name or _default_run_name(ref, spec)
        with self._call(f"creating run {name!r}"):
            run = self._client.run_pipeline(
                experiment_id=experiment_id,
                job_name=name,
                params=values,
                service_account=service_account,
                enable_caching=enable_caching,
                **target,
            )
        return _run_info(run)

    def schedule(
        self,
        ref: PipelineRef,
        *,
        experiment: str,
        cron: str,
        name: str | None = None,
        params: Sequence[str] = (),
        max_concurrency: int = 1,
        no_catchup: bool = False,
        start: str | None = None,
        end: str | None = None,
        service_account: str | None = None,
    ) -> RecurringRunInfo:
        """A recurring run on KFP's 6-field cron (checked here first)."""
        cron = validate_cron(cron)
        if max_concurrency < 1:
            raise KfpError(f"--max-concurrency {max_concurrency}: must be at least 1")
        start_time = parse_time(start, "--start") if start else None
        end_time = parse_time(end, "--end") if end else None
        if start_time and end_time and end_time <= start_time:
            raise KfpError(f"--end {end}: must be after --start {start}")
        target, spec = self._target(ref)
        values = parse_params(params, spec)
        experiment_id = self._experiment_id(experiment)
        job_name = name or f"{_default_run_name(ref, spec)}-schedule"
        with self._call(f"creating recurring run {job_name!r}"):
            made = self._client.create_recurring_run(
                experiment_id=experiment_id,
                job_name=job_name,
                cron_expression=cron,
                max_concurrency=max_concurrency,
                no_catchup=no_catchup,
                start_time=start_time,
                end_time=end_time,
                params=values,
                service_account=service_account,
                **target,
            )
        return _recurring_info(made)

    def runs(self, *, experiment: str | None = None, limit: int = 20) -> list[RunInfo]:
        """The newest runs (of one experiment, by name), newest first."""
        experiment_id = self._find_experiment(experiment) if experiment else None
        with self._call("listing runs"):
            listing = self._client.list_runs(
                page_size=limit,
                sort_by="created_at desc",
                experiment_id=experiment_id,
                namespace=self.settings.namespace,
            )
        return [_run_info(run) for run in listing.runs or []]

    def recurring_runs(
        self, *, experiment: str | None = None, limit: int = 20
    ) -> list[RecurringRunInfo]:
        experiment_id = self._find_experiment(experiment) if experiment else None
        with self._call("listing recurring runs"):
            listing = self._client.list_recurring_runs(
                page_size=limit,
                sort_by="created_at desc",
                experiment_id=experiment_id,
                namespace=self.settings.namespace,
            )
        return [_recurring_info(job) for job in listing.recurring_runs or []]

    def _find_experiment(self, name: str) -> str:
        with self._call(f"looking up experiment {name!r}"):
            try:
                found = self._client.get_experiment(
                    experiment_name=name, namespace=self.settings.namespace
                )
            except ValueError:
                raise KfpError(f"no experiment named {name!r}") from None
        return str(found.experiment_id)

    def status(self, run_id: str) -> RunInfo:
        with self._call(f"reading run {run_id}"):
            return _run_info(self._client.get_run(run_id))

    def recurring_status(self, recurring_run_id: str) -> RecurringRunInfo:
        with self._call(f"reading recurring run {recurring_run_id}"):
            return _recurring_info(self._client.get_recurring_run(recurring_run_id))


def _default_version_name(path: str) -> str:
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:8]
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{digest}"


def _default_run_name(ref: PipelineRef, spec: Mapping[str, Any] | None) -> str:
    name = ref.name or ((spec or {}).get("pipelineInfo") or {}).get("name") or "pipeline"
    return f"{name}-{datetime.now(UTC):%Y%m%d-%H%M%S}"


def _run_info(run: Any) -> RunInfo:
    details = getattr(run, "run_details", None)
    tasks = [
        (str(t.display_name or t.task_id), str(t.state or "UNKNOWN"))
        for t in (getattr(details, "task_details", None) or [])
    ]
    runtime = getattr(run, "runtime_config", None)
    ref = getattr(run, "pipeline_version_reference", None)
    pipeline = None
    if ref is not None and ref.pipeline_id:
        pipeline = f"{ref.pipeline_id}/{ref.pipeline_version_id}"
    error = getattr(run, "error", None)
    return RunInfo(
        run_id=str(run.run_id),
        name=str(run.display_name or ""),
        state=str(run.state or "PENDING"),
        experiment_id=run.experiment_id,
        created_at=_text(run.created_at),
        finished_at=_text(run.finished_at),
        error=(getattr(error, "message", None) or None) if error else None,
        recurring_run_id=run.recurring_run_id,
        pipeline=pipeline,
        parameters=dict((runtime.parameters or {}) if runtime else {}),
        tasks=tasks,
    )


def _recurring_info(job: Any) -> RecurringRunInfo:
    trigger = job.trigger
    cron = getattr(trigger, "cron_schedule", None) if trigger else None
    periodic = getattr(trigger, "periodic_schedule", None) if trigger else None
    if cron is not None and cron.cron:
        text = f"cron {cron.cron}"
        window = (cron.start_time, cron.end_time)
    elif periodic is not None:
        text = f"every {periodic.interval_second}s"
        window = (periodic.start_time, periodic.end_time)
    else:
        text, window = "none", (None, None)
    if window[0] or window[1]:
        text += f" from {_text(window[0]) or 'now'} to {_text(window[1]) or 'no end'}"
    runtime = job.runtime_config
    return RecurringRunInfo(
        recurring_run_id=str(job.recurring_run_id),
        name=str(job.display_name or ""),
        status=str(job.status or job.mode or "UNKNOWN"),
        trigger=text,
        max_concurrency=int(job.max_concurrency) if job.max_concurrency is not None else None,
        no_catchup=job.no_catchup,
        experiment_id=job.experiment_id,
        created_at=_text(job.created_at),
        parameters=dict((runtime.parameters or {}) if runtime else {}),
    )
