"""What both modes of the Kubernetes executor share (:class:`ClusterExecutor`).

The API clients, the trial files in the object store, the report server and its token,
deleting a Job, and riding out a Kubernetes API that cannot be reached: Job creates are
tried again with doubling waits (:class:`CreateRetry`), the watches list again with theirs
(:class:`~kubetune.executors.kubernetes.informer.Informer`), and :meth:`_check_api` ends the
run with one clear error once the API has been out of reach longer than
``executor.api_outage_s``, leaving the work in the cluster for the next run to adopt.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NotRequired, TypedDict

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from kubetune.core.executor import Executor
from kubetune.errors import KubetuneError, SpecError
from kubetune.executors.kubernetes.informer import Informer
from kubetune.executors.kubernetes.options import KubernetesOptions
from kubetune.executors.kubernetes.results import TrialFiles
from kubetune.executors.report_channel import ReportServer, Route
from kubetune.storage import open_store

__all__ = [
    "SYNC_TIMEOUT_S",
    "UNAVAILABLE",
    "ClusterArgs",
    "ClusterExecutor",
    "CreateRetry",
    "api_reason",
    "refused",
    "report_token",
    "report_url",
]

_log = logging.getLogger(__name__)
_TOKEN_FILE = "report-token"  # noqa: S105 - a file name
# How long the first list of Jobs and pods may take (the API server is unreachable else).
SYNC_TIMEOUT_S = 30.0
# Answers of an API server that is restarting or overloaded: wait and try again.
UNAVAILABLE = frozenset({429, 500, 502, 503, 504})
# Between two creates of a Job the API could not be reached for (at most; doubling).
_CREATE_BACKOFF_S = (0.5, 8.0)


@dataclass
class CreateRetry:
    """When to try a Job create again that could not reach the API (doubling waits)."""

    at: float = 0.0
    wait_s: float = _CREATE_BACKOFF_S[0]

    def due(self, now: float) -> bool:
        return now >= self.at

    def later(self, now: float) -> float:
        """Schedule the next try; the wait before it."""
        wait = self.wait_s
        self.at = now + wait
        self.wait_s = min(wait * 2, _CREATE_BACKOFF_S[1])
        return wait


class ClusterArgs(TypedDict):
    """The arguments of both executor modes (``from_context`` builds them from the spec)."""

    options: KubernetesOptions
    api_client: client.ApiClient
    namespace: str
    experiment: str
    spec_data: dict[str, Any]
    spec_dir: str
    capacity: int
    trials_uri: str
    token_dir: NotRequired[Path | None]


class ClusterExecutor(Executor):
    """The base of :class:`KubernetesExecutor` (Job per trial) and
    :class:`WorkerPoolExecutor` (warm worker pods); ``routes`` add endpoints to the report
    server (the worker protocol)."""

    kind = "kubernetes"
    #: the end of the outage error: what becomes of the work the cluster still runs
    LEFT_RUNNING = "its Jobs keep running, and running the experiment again adopts them"

    def __init__(
        self,
        *,
        options: KubernetesOptions,
        api_client: client.ApiClient,
        namespace: str,
        experiment: str,
        spec_data: dict[str, Any],
        spec_dir: str,
        capacity: int,
        trials_uri: str,
        token_dir: Path | None = None,
        routes: Mapping[str, Route] | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._wake = threading.Event()  # set by the watches and the server: poll looks again
        self._options = options
        self._capacity = capacity
        self._api = client.BatchV1Api(api_client)
        self._core = client.CoreV1Api(api_client)
        self._api_client = api_client
        self._namespace = namespace
        self._experiment = experiment
        self._spec_data = spec_data
        self._spec_dir = spec_dir
        self._files = TrialFiles(open_store(trials_uri))
        self.cancel_grace_s = options.cancel_grace_s
        self._server = ReportServer(
            report_token(token_dir),
            host=options.report_host,
            port=options.report_port,
            routes=routes,
        )
        self._report_url = report_url(options, self._server.url)
        self._create_failing_since: float | None = None  # creates cannot reach the API
        self._api_lost = False  # stopped by an outage longer than options.api_outage_s

    @property
    def capacity(self) -> int:
        return self._capacity

    def _changed(self, name: str = "") -> None:
        self._wake.set()  # a watch or a worker saw a change: poll looks again

    def _start_informer(self, informer: Informer) -> None:
        """Start a watch and wait for its first list; a clear error if the API is not there."""
        try:
            informer.start(SYNC_TIMEOUT_S)
        except ConnectionError as exc:
            informer.stop()
            host = self._api_client.configuration.host
            raise KubetuneError(
                f"kubernetes executor: namespace {self._namespace} at {host}: {exc}"
            ) from None

    def _delete(self, name: str) -> None:
        """Delete the Job and (background propagation) its pods; a Job gone already is fine."""
        with contextlib.suppress(ApiException, HTTPError, OSError):
            self._api.delete_namespaced_job(
                name, self._namespace, propagation_policy="Background", _request_timeout=30
            )

    # --- the API going away --------------------------------------------------------------

    def _create_failed(self, name: str, retry: CreateRetry, now: float, why: str) -> None:
        """A create could not reach the API (or it is unavailable): try again later."""
        if self._create_failing_since is None:
            self._create_failing_since = now
        wait = retry.later(now)
        _log.warning(
            "cannot reach the Kubernetes API to create Job %s (%s); trying again in %.1fs",
            name, why, wait,
        )  # fmt: skip

    def _create_answered(self) -> None:
        self._create_failing_since = None

    def _check_api(self, now: float, informers: tuple[Informer | None, ...]) -> None:
        """Raise once the API has been unreachable longer than ``api_outage_s``: a clear end
        instead of a run that waits forever. Shorter outages are waited out (the watches
        list again with backoff, creates are retried); the cluster runs on meanwhile."""
        down, why = 0.0, ""
        for informer in informers:
            if informer is not None and informer.down_for(now) > down:
                down, why = informer.down_for(now), informer.last_error or ""
        if self._create_failing_since is not None and now - self._create_failing_since > down:
            down, why = now - self._create_failing_since, "creating a Job failed"
        bound = self._options.api_outage_s
        if down <= bound:
            return
        self._api_lost = True
        host = self._api_client.configuration.host
        raise KubetuneError(
            f"kubernetes executor: the Kubernetes API at {host} has been unreachable for"
            f" {down:.0f}s, longer than executor.api_outage_s ({bound:g}s; last error: {why});"
            f" {self.LEFT_RUNNING}"
        )


def report_token(folder: Path | None) -> str:
    """This run's report token, kept in the run folder (mode 0600) so that a restarted
    controller accepts the reports of the pods it adopts."""
    if folder is None:
        return secrets.token_urlsafe(24)
    path = folder / _TOKEN_FILE
    with contextlib.suppress(OSError):
        token = path.read_text().strip()
        if token:
            return token
    token = secrets.token_urlsafe(24)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token)
    return token


def report_url(options: KubernetesOptions, bound: str) -> str:
    """The report URL the pods use: ``controller_url`` (a Service) when given, else this
    host's address (in a cluster: the controller pod's IP) and the bound port."""
    path = bound[bound.index("/", len("http://")) :]
    if options.controller_url:
        return options.controller_url.rstrip("/") + path
    host = options.report_host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - comparing, not binding
        host = socket.gethostbyname(socket.gethostname())
    port = bound.split("/")[2].rsplit(":", 1)[1]
    return f"http://{host}:{port}{path}"


def refused(exc: ApiException, what: str) -> None:
    """Raise when every Job would be refused the same way: an invalid manifest (from the
    executor options) or missing permissions. A quota that is full is not that: it passes.
    ``what`` names the Job (``trial Job kt-...``)."""
    reason = api_reason(exc)
    if exc.status in (400, 422):
        raise SpecError(f"executor: the cluster refused the {what}: {reason}")
    if exc.status in (401, 403) and "quota" not in reason.lower():
        raise KubetuneError(
            f"kubernetes executor: not allowed to create {what} ({reason}); the"
            " controller's service account needs create, list, watch and delete on jobs,"
            " list and watch on pods, list on events"
        )


def api_reason(exc: ApiException) -> str:
    with contextlib.suppress(TypeError, ValueError):
        body = json.loads(exc.body or "")
        if isinstance(body, dict) and body.get("message"):
            return f"HTTP {exc.status} {body.get('reason') or ''}: {body['message']}"
    return f"HTTP {exc.status} {exc.reason}"
