"""``kubetune trial``: run one trial from a serialized request (what a subprocess or pod runs).

The request carries the spec as data (``--spec`` is only for hand-made requests), the
params, the fidelity budget and how to reach the controller. Reports go to the controller
over HTTP when the request names a channel, so its scheduler can prune this trial; they are
also appended to ``--progress`` when given. The result is written atomically; the exit code
follows the contract in :class:`~kubetune.core.trial.ExitCode`.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from kubetune.core.run_trial import TrialFunction, run_trial
from kubetune.core.spec import ExperimentSpec, load_spec, parse_spec
from kubetune.core.trial import (
    ExitCode,
    ReportChannel,
    Reporter,
    TrialFailure,
    TrialRequest,
    TrialStatus,
    UnusableRequestError,
)
from kubetune.errors import KubetuneError, StorageError
from kubetune.steps.search import normalize_objective
from kubetune.steps.trial import BuiltinTrial
from kubetune.storage import atomic_write_text, local_path, open_object, uri_scheme

# The env a pod's controller sets (kubetune.executors.kubernetes.job; plain names here so
# the trial entry point does not import the Kubernetes executor).
ENV_REPORT_URL = "KUBETUNE_REPORT_URL"
ENV_REPORT_TOKEN = "KUBETUNE_REPORT_TOKEN"  # noqa: S105 - a variable name


class JsonLinesReporter:
    """Appends each report to a file as it happens."""

    def __init__(self, path: Path | None) -> None:
        self._path = path

    def report(self, step: int, value: float) -> None:
        if self._path is not None:
            with self._path.open("a") as fh:
                fh.write(json.dumps({"step": step, "value": value}) + "\n")


class _Fanout:
    """Reports to the progress file first, then to the controller (which may prune)."""

    def __init__(self, *reporters: Reporter) -> None:
        self._reporters = reporters

    def report(self, step: int, value: float) -> None:
        for reporter in self._reporters:
            reporter.report(step, value)


def run_trial_command(
    spec_path: str | None,
    request_path: str,
    output: str,
    progress: str | None,
    *,
    function: str | None = None,
    started_marker: str | None = None,
) -> int:
    try:
        request, spec, fn = prepare_trial(request_path, spec_path, function)
    except UnusableRequest as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    return execute_trial(
        request, spec, fn, output, progress=progress, started_marker=started_marker
    )


class UnusableRequest(Exception):
    """The request (or the spec or function it names) cannot be used: exit code 2."""


# Warm workers keep the trial function of each spec (the built-in trainer caches its data
# set and trainer in the instance), so data is loaded once while the spec's data stays.
FunctionCache = dict[str, TrialFunction]


def prepare_trial(
    request_path: str,
    spec_path: str | None = None,
    function: str | None = None,
    cache: FunctionCache | None = None,
) -> tuple[TrialRequest, ExperimentSpec, TrialFunction]:
    """Read the request and build its spec and trial function (from ``cache`` if there)."""
    try:
        request = TrialRequest.from_dict(json.loads(_read_text(request_path)))
        request = _with_env_channel(request)
        spec = _spec_for(request, spec_path)
        key = function or json.dumps(
            [request.spec, request.spec_dir, spec_path], sort_keys=True, default=str
        )
        if not function:  # the built-in trainer reports its metrics as val_<metric>
            spec = normalize_objective(spec)
        fn = cache.get(key) if cache is not None else None
        if fn is None:
            fn = _load_function(function) if function else BuiltinTrial.from_spec(spec)
            if cache is not None:
                cache[key] = fn
    except (OSError, ValueError, TypeError, UnusableRequestError, StorageError) as exc:
        raise UnusableRequest(f"cannot read trial request {request_path}: {exc}") from None
    except RecursionError:  # json's parser recurses per nesting level
        raise UnusableRequest(
            f"cannot read trial request {request_path}: nested too deeply"
        ) from None
    except KubetuneError as exc:
        raise UnusableRequest(str(exc)) from None
    return request, spec, fn


def execute_trial(
    request: TrialRequest,
    spec: ExperimentSpec,
    fn: TrialFunction,
    output: str,
    *,
    progress: str | None = None,
    started_marker: str | None = None,
) -> int:
    """Run the trial, report to its controller, write its result; the exit code."""
    out = local_path(output, Path.cwd())  # None: an object-store URI (s3://...)
    progress_path = Path(progress) if progress else None
    try:  # before training: a pod that cannot write its result should not train first
        for path in (out, progress_path):
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"error: cannot create the output folder: {exc}", file=sys.stderr)
        return ExitCode.USAGE

    remote = None
    reporters: list[Reporter] = [JsonLinesReporter(progress_path)]
    if request.report is not None:
        from kubetune.executors.report_channel import HttpReporter

        remote = HttpReporter(request.report, request.number, request.attempt)
        reporters.append(remote)
    # The controller's deadline clock starts now, not at process start: told over HTTP (a
    # pod's controller cannot see our files), then by the marker file (a local one).
    if remote is not None:
        remote.started()
    if started_marker:
        Path(started_marker).write_text(str(os.getpid()))
    outcome = run_trial(fn, request, _Fanout(*reporters), spec.objective.metric)
    if remote is not None:
        outcome.pruning_off = remote.pruning_off
    text = json.dumps(outcome.to_dict(), indent=2)
    try:
        if out is not None:
            atomic_write_text(out, text)  # never half a result
        else:  # an object store: a put is atomic
            store, key = open_object(output)
            store.put_bytes(key, text.encode())
    except (OSError, StorageError) as exc:
        print(f"error: cannot write the trial result to {output}: {exc}", file=sys.stderr)
        return 1  # no result: the controller sees an infrastructure failure and retries
    print(
        f"trial {request.number}: {outcome.status.value}"
        + (f" {spec.objective.metric}={outcome.value:.6g}" if outcome.value is not None else "")
        + (f" ({outcome.message.splitlines()[0]})" if outcome.message else ""),
        file=sys.stderr,
    )
    if outcome.status is not TrialStatus.FAILED:
        return ExitCode.OK
    if outcome.failure is TrialFailure.INVALID_CONFIG:
        return ExitCode.INVALID_CONFIG
    return ExitCode.TRIAL_FAILED


def _read_text(location: str) -> str:
    """A local file, or an object (``file://``, ``s3://``...) in the object store."""
    if uri_scheme(location) is None:
        return Path(location).read_text()
    store, key = open_object(location)
    return store.get_bytes(key).decode()


def _with_env_channel(request: TrialRequest) -> TrialRequest:
    """A pod gets its controller's address and token as env (``KUBETUNE_REPORT_URL``,
    ``KUBETUNE_REPORT_TOKEN``), so the request object in storage holds no token."""
    url, token = os.environ.get(ENV_REPORT_URL), os.environ.get(ENV_REPORT_TOKEN)
    if request.report is not None or not url or not token:
        return request
    return replace(request, report=ReportChannel(url=url, token=token))


def _spec_for(request: TrialRequest, spec_path: str | None) -> ExperimentSpec:
    if spec_path is not None:
        return load_spec(spec_path)
    if request.spec is None:
        raise UnusableRequestError("the request holds no spec and no --spec was given")
    base_dir = Path(request.spec_dir) if request.spec_dir else Path.cwd()
    return parse_spec(request.spec, source="the trial request's spec", base_dir=base_dir)


def _load_function(target: str) -> TrialFunction:
    """``module:attr``: a trial function ``fn(request, reporter)`` instead of the trainer."""
    module, _, attr = target.partition(":")
    if not module or not attr:
        raise UnusableRequestError(f"--function must look like 'module:function', got {target!r}")
    try:
        fn: Any = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise UnusableRequestError(f"cannot load trial function {target!r}: {exc}") from None
    return fn


__all__ = [
    "FunctionCache",
    "JsonLinesReporter",
    "UnusableRequest",
    "execute_trial",
    "prepare_trial",
    "run_trial_command",
]
