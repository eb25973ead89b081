"""A **simulated** Kubeflow Pipelines REST API (v2beta1) for tests, on 127.0.0.1.

It implements only what ``kfp.Client`` calls for ``kubetune pipeline upload|submit|
schedule|runs|status``: healthz, pipeline upload / upload_version / list / get, pipeline
versions list / get, experiments create / list / get, runs create / get / list and
recurring runs create / get / list, with KFP's JSON field names, its ``display_name``
EQUALS filter, ``created_at desc`` sorting and its error body
(``{"error", "message", "code"}``). It records every request, so tests check what the real
client sent (the uploaded bytes, the cron, the parameters...). No workflow ever runs:
a run stays PENDING unless a test sets its state with :meth:`SimulatedKfpServer.set_run_state`.

    with SimulatedKfpServer(token="secret") as kfp:
        kfp.url                    # http://127.0.0.1:PORT
        kfp.requests               # [RecordedRequest(...), ...]
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import threading
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml

__all__ = ["RecordedRequest", "SimulatedKfpServer"]

_API = "/apis/v2beta1"


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    json: Any = None
    files: dict[str, bytes] = field(default_factory=dict)
    authorization: str | None = None
    cookie: str | None = None


class _ApiError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


_GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6}


class SimulatedKfpServer:
    """In-memory KFP API state served by ``http.server`` in a background thread.

    ``token``: when set, every request must carry ``Authorization: Bearer <token>``
    (401 otherwise); ``forbidden``: answer 403 to everything (an RBAC refusal).
    """

    def __init__(self, *, token: str | None = None, multi_user: bool = False) -> None:
        self.token = token
        self.forbidden = False
        self.multi_user = multi_user
        self.requests: list[RecordedRequest] = []
        self.pipelines: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, dict[str, Any]] = {}  # version id -> version
        self.experiments: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.recurring_runs: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        # Simulated time: each object is one second newer, so "created_at desc" is exact.
        self._clock = datetime(2026, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # --- lifecycle ----------------------------------------------------------------------
    @property
    def url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def start(self) -> SimulatedKfpServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> SimulatedKfpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- test helpers -------------------------------------------------------------------
    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and r.path == _API + path]

    def set_run_state(
        self,
        run_id: str,
        state: str,
        *,
        tasks: dict[str, str] | None = None,
        error: str | None = None,
    ) -> None:
        """What the KFP backend would report for a run once its workflow has progressed."""
        with self._lock:
            run = self.runs[run_id]
            run["state"] = state
            if state in ("SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"):
                run["finished_at"] = self._now()
            if error:
                run["error"] = {"code": 2, "message": error}
            if tasks:
                run["run_details"] = {
                    "task_details": [
                        {"task_id": f"task-{i}", "display_name": n, "state": s}
                        for i, (n, s) in enumerate(tasks.items())
                    ]
                }

    def trigger(self, recurring_run_id: str) -> str:
        """Start a run of a recurring run, as KFP's scheduler would at a cron time."""
        with self._lock:
            job = self.recurring_runs[recurring_run_id]
            fields = (
                "experiment_id",
                "pipeline_spec",
                "pipeline_version_reference",
                "runtime_config",
                "service_account",
            )
            body = {k: job[k] for k in fields if job.get(k) is not None}
            body["display_name"] = f"{job['display_name']}-{len(self.runs) + 1}"
            body["recurring_run_id"] = recurring_run_id
            run = self._create(
                self.runs, "run", body, "run_id", state="PENDING", storage_state="AVAILABLE"
            )
            return str(run["run_id"])

    # --- state --------------------------------------------------------------------------
    def _new_id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids):04d}"

    def _now(self) -> str:
        self._clock += timedelta(seconds=1)
        return self._clock.strftime("%Y-%m-%dT%H:%M:%SZ")

    def _add_version(self, pipeline_id: str, name: str, spec_text: bytes) -> dict[str, Any]:
        docs = [d for d in yaml.safe_load_all(spec_text.decode("utf-8")) if d is not None]
        if not docs or not isinstance(docs[0], dict) or "pipelineInfo" not in docs[0]:
            raise _ApiError(HTTPStatus.BAD_REQUEST, "invalid pipeline spec: no pipelineInfo")
        if any(
            v["pipeline_id"] == pipeline_id and v["display_name"] == name
            for v in self.versions.values()
        ):
            raise _ApiError(
                HTTPStatus.CONFLICT, f"pipeline version with name {name!r} already exists"
            )
        version: dict[str, Any] = {
            "pipeline_id": pipeline_id,
            "pipeline_version_id": self._new_id("version"),
            "display_name": name,
            "name": name,
            "created_at": self._now(),
            "pipeline_spec": docs[0],
        }
        self.versions[version["pipeline_version_id"]] = version
        return version

    # --- routing ------------------------------------------------------------------------
    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: Any,
        files: dict[str, bytes],
    ) -> Any:
        one = {k: v[0] for k, v in query.items()}
        parts = path.removeprefix(_API).strip("/").split("/")
        if method == "GET" and parts == ["healthz"]:
            return {
                "commit_sha": "simulated",
                "tag_name": "2.x-simulated",
                "multi_user": self.multi_user,
            }
        if parts[0] == "pipelines":
            return self._pipelines(method, parts[1:], one, files)
        if parts == ["experiments"]:
            if method == "POST":
                return self._create(
                    self.experiments, "experiment", body, "experiment_id", storage_state="AVAILABLE"
                )
            return {"experiments": self._list(self.experiments.values(), one)}
        if parts[0] == "experiments" and len(parts) == 2 and method == "GET":
            return self._get(self.experiments, parts[1], "experiment")
        if parts == ["runs"]:
            if method == "POST":
                self._check_experiment(body)
                self._check_reference(body)
                return self._create(
                    self.runs, "run", body, "run_id", state="PENDING", storage_state="AVAILABLE"
                )
            items = self._filter_field(self.runs.values(), one, "experiment_id")
            return {"runs": self._list(items, one)}
        if parts[0] == "runs" and len(parts) == 2 and method == "GET":
            return self._get(self.runs, parts[1], "run")
        if parts == ["recurringruns"]:
            if method == "POST":
                self._check_experiment(body)
                self._check_reference(body)
                mode = body.get("mode", "ENABLE")
                return self._create(
                    self.recurring_runs,
                    "recurring-run",
                    body,
                    "recurring_run_id",
                    status="ENABLED" if mode == "ENABLE" else "DISABLED",
                )
            items = self._filter_field(self.recurring_runs.values(), one, "experiment_id")
            return {"recurringRuns": self._list(items, one)}
        if parts[0] == "recurringruns" and len(parts) == 2 and method == "GET":
            return self._get(self.recurring_runs, parts[1], "recurring run")
        raise _ApiError(HTTPStatus.NOT_FOUND, f"simulated KFP has no {method} {path}")

    def _pipelines(
        self, method: str, parts: list[str], one: dict[str, str], files: dict[str, bytes]
    ) -> Any:
        if method == "POST" and parts == ["upload"]:
            name = one.get("name") or one.get("display_name") or ""
            if any(p["display_name"] == name for p in self.pipelines.values()):
                raise _ApiError(HTTPStatus.CONFLICT, f"pipeline with name {name!r} already exists")
            pipeline = {
                "pipeline_id": self._new_id("pipeline"),
                "display_name": name,
                "name": name,
                "description": one.get("description", ""),
                "namespace": one.get("namespace", ""),
                "created_at": self._now(),
            }
            self._add_version(pipeline["pipeline_id"], name, self._upload(files))
            self.pipelines[pipeline["pipeline_id"]] = pipeline
            return pipeline
        if method == "POST" and parts == ["upload_version"]:
            pipeline_id = one.get("pipelineid", "")
            if pipeline_id not in self.pipelines:
                raise _ApiError(HTTPStatus.NOT_FOUND, f"pipeline {pipeline_id!r} not found")
            name = one.get("name") or one.get("display_name") or ""
            return self._add_version(pipeline_id, name, self._upload(files))
        if method == "GET" and not parts:
            return {"pipelines": self._list(self.pipelines.values(), one)}
        if method == "GET" and len(parts) == 1:
            return self._get(self.pipelines, parts[0], "pipeline")
        if method == "GET" and len(parts) == 2 and parts[1] == "versions":
            self._get(self.pipelines, parts[0], "pipeline")
            items = [v for v in self.versions.values() if v["pipeline_id"] == parts[0]]
            return {"pipeline_versions": self._list(items, one)}
        if method == "GET" and len(parts) == 3 and parts[1] == "versions":
            version = self._get(self.versions, parts[2], "pipeline version")
            if version["pipeline_id"] != parts[0]:
                raise _ApiError(HTTPStatus.NOT_FOUND, f"pipeline version {parts[2]!r} not found")
            return version
        raise _ApiError(HTTPStatus.NOT_FOUND, f"simulated KFP has no {method} pipelines/{parts}")

    @staticmethod
    def _upload(files: dict[str, bytes]) -> bytes:
        if "uploadfile" not in files:
            raise _ApiError(HTTPStatus.BAD_REQUEST, "no uploadfile in the multipart form")
        return files["uploadfile"]

    def _check_experiment(self, body: dict[str, Any]) -> None:
        if body.get("experiment_id") not in self.experiments:
            raise _ApiError(
                HTTPStatus.NOT_FOUND, f"experiment {body.get('experiment_id')!r} not found"
            )

    def _check_reference(self, body: dict[str, Any]) -> None:
        ref = body.get("pipeline_version_reference")
        if ref is None:
            if not isinstance(body.get("pipeline_spec"), dict):
                raise _ApiError(HTTPStatus.BAD_REQUEST, "neither pipeline_spec nor a version")
            return
        version = self.versions.get(ref.get("pipeline_version_id", ""))
        if version is None or version["pipeline_id"] != ref.get("pipeline_id"):
            raise _ApiError(HTTPStatus.NOT_FOUND, "pipeline version not found")

    def _create(
        self, table: dict[str, dict[str, Any]], kind: str, body: Any, key: str, **defaults: Any
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _ApiError(HTTPStatus.BAD_REQUEST, f"a {kind} must be a JSON object")
        item = {**defaults, **body, key: self._new_id(kind), "created_at": self._now()}
        table[item[key]] = item
        return item

    @staticmethod
    def _get(table: dict[str, dict[str, Any]], key: str, kind: str) -> dict[str, Any]:
        if key not in table:
            raise _ApiError(HTTPStatus.NOT_FOUND, f"{kind} {key!r} not found")
        return table[key]

    @staticmethod
    def _filter_field(items: Any, one: dict[str, str], name: str) -> list[dict[str, Any]]:
        wanted = one.get(name)
        return [i for i in items if wanted is None or i.get(name) == wanted]

    @staticmethod
    def _list(items: Any, one: dict[str, str]) -> list[dict[str, Any]]:
        """KFP's filter (EQUALS predicates), sort_by (``field [desc]``) and page_size."""
        result = list(items)
        if one.get("filter"):
            for predicate in json.loads(one["filter"]).get("predicates", []):
                # protojson: the enum by name, or by number as kfp.Client sends it (1)
                if predicate.get("operation") not in ("EQUALS", 1):
                    raise _ApiError(HTTPStatus.BAD_REQUEST, "only EQUALS filters are simulated")
                key, value = predicate["key"], predicate.get("stringValue")
                result = [i for i in result if i.get(key) == value]
        if one.get("sort_by"):
            key, _, order = one["sort_by"].partition(" ")
            result.sort(key=lambda i: str(i.get(key, "")), reverse=order.strip() == "desc")
        size = int(one.get("page_size") or 0)
        return result[:size] if size > 0 else result

    # --- HTTP ---------------------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # http.server's naming
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                return

            def _serve(self, method: str) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                record = RecordedRequest(
                    method,
                    url.path,
                    query,
                    authorization=self.headers.get("Authorization"),
                    cookie=self.headers.get("Cookie"),
                )
                try:
                    content_type = self.headers.get("Content-Type", "")
                    if content_type.startswith("multipart/form-data"):
                        record.files = _multipart(content_type, raw)
                    elif raw:
                        record.json = json.loads(raw)
                    with owner._lock:
                        owner.requests.append(record)
                        if owner.forbidden:
                            raise _ApiError(HTTPStatus.FORBIDDEN, "simulated RBAC refusal")
                        if owner.token and record.authorization != f"Bearer {owner.token}":
                            raise _ApiError(
                                HTTPStatus.UNAUTHORIZED, "missing or wrong bearer token"
                            )
                        answer = owner._route(method, url.path, query, record.json, record.files)
                    self._send(HTTPStatus.OK, answer)
                except _ApiError as exc:
                    code = _GRPC_CODES.get(exc.status.value, 2)
                    self._send(
                        exc.status, {"error": exc.message, "message": exc.message, "code": code}
                    )

            def _send(self, status: HTTPStatus, data: Any) -> None:
                payload = json.dumps(data).encode()
                self.send_response(status.value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler


def _multipart(content_type: str, raw: bytes) -> dict[str, bytes]:
    """Field name -> bytes of a multipart/form-data body (the stdlib's email parser:
    ``cgi`` is gone from Python 3.13)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw
    )
    files: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if name:
            files[str(name)] = payload if isinstance(payload, bytes) else b""
    return files
