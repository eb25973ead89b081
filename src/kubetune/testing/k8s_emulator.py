"""A simulated Kubernetes API server: the few endpoints the Kubernetes executor uses.

In-process and stateful, on :mod:`http.server`, reached through the real ``kubernetes``
client. It serves ``batch/v1`` Jobs and ``core/v1`` Pods and Events in namespaces:
create (409 on a name taken), get, list and watch with label/field selectors, delete (with
``propagationPolicy``: Background/Foreground delete the Job's pods, none orphans them, as a
real API server does for Jobs).

Why not ``kmock``'s emulator (0.8): its lists carry a placeholder ``resourceVersion``, its
watch ignores ``resourceVersion`` (replays everything) and never expires, and it does not
filter by label selector. The executor's watch resumes from a resourceVersion and falls
back to a list on ``410 Gone``; testing that needs a server that keeps real versions and a
bounded history, which this one does (:meth:`expire_history` forces a 410).

Objects are changed in-process by the simulated kubelet (:mod:`kubetune.testing.kubelet`)
with :meth:`create`, :meth:`patch_status` and :meth:`delete`; those calls are not counted
as API requests. ``requests`` counts what clients sent over HTTP, by ``"verb resource"``.
"""

from __future__ import annotations

import collections
import copy
import datetime
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["KubernetesEmulator", "WatchEvent"]

Obj = dict[str, Any]
Key = tuple[str, str, str]  # (resource, namespace, name)

_ROUTE = re.compile(
    r"^/(?:api/v1|apis/batch/v1)/namespaces/(?P<ns>[^/]+)/(?P<resource>jobs|pods|events)"
    r"(?:/(?P<name>[^/]+))?(?:/(?P<sub>status))?$"
)
_KINDS = {"jobs": ("batch/v1", "Job"), "pods": ("v1", "Pod"), "events": ("v1", "Event")}


@dataclass(frozen=True)
class WatchEvent:
    version: int
    type: str  # ADDED, MODIFIED, DELETED
    resource: str
    obj: Obj


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class KubernetesEmulator:
    """Start with :meth:`start` (or as a context manager); ``url`` is the server's address."""

    def __init__(self, *, history_limit: int = 10_000) -> None:
        self._lock = threading.Condition()
        self._objects: dict[Key, Obj] = {}
        self._version = 0
        self._history: collections.deque[WatchEvent] = collections.deque(maxlen=history_limit)
        self._oldest_resumable = 0  # a watch resuming from an older version gets 410
        self._closed = False
        self._watch_generation = 0  # bumped by break_watches(): open streams end
        self.requests: collections.Counter[str] = collections.Counter()
        self._listeners: list[Callable[[WatchEvent], None]] = []
        # Admission, for fault injection: (resource, object) -> None to admit, or
        # (HTTP code, reason, message) to refuse the create, as a quota or a webhook would.
        self.admission: Callable[[str, Obj], tuple[int, str, str] | None] | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="k8s-emulator", daemon=True
        )

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> KubernetesEmulator:
        self._thread.start()
        return self

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> KubernetesEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def kubeconfig(self, namespace: str = "default") -> str:
        """A kubeconfig (YAML text) whose current context points at this server."""
        import yaml

        return yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "simulated", "cluster": {"server": self.url}}],
                "users": [{"name": "tester", "user": {"token": "simulated-token"}}],
                "contexts": [
                    {
                        "name": "simulated",
                        "context": {
                            "cluster": "simulated",
                            "user": "tester",
                            "namespace": namespace,
                        },
                    }
                ],
                "current-context": "simulated",
            }
        )

    # --- in-process API (the simulated kubelet's side; not counted) ----------------------

    def subscribe(self, listener: Callable[[WatchEvent], None]) -> None:
        """Call ``listener`` (under no lock, in the changing thread) after each change."""
        self._listeners.append(listener)

    def create(self, resource: str, namespace: str, obj: Obj) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta["namespace"] = namespace
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        key = (resource, namespace, meta.get("name", ""))
        with self._lock:
            if not key[2]:
                raise _ApiError(
                    HTTPStatus.UNPROCESSABLE_ENTITY, "Invalid", "metadata.name: Required"
                )
            if key in self._objects:
                raise _ApiError(
                    HTTPStatus.CONFLICT,
                    "AlreadyExists",
                    f'{resource} "{key[2]}" already exists',
                )
            api_version, kind = _KINDS[resource]
            obj["apiVersion"], obj["kind"] = api_version, kind
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_iso()
            meta.setdefault("labels", {})
            if resource == "jobs":  # what the API server defaults on a Job
                meta["labels"].setdefault("job-name", key[2])
                meta["labels"].setdefault("controller-uid", meta["uid"])
                obj.setdefault("status", {})
            self._objects[key] = obj
            event = self._record("ADDED", resource, obj)
        self._notify(event)
        return copy.deepcopy(obj)

    def get(self, resource: str, namespace: str, name: str) -> Obj | None:
        with self._lock:
            obj = self._objects.get((resource, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def list_objects(
        self,
        resource: str,
        namespace: str,
        label_selector: str = "",
        field_selector: str = "",
    ) -> list[Obj]:
        with self._lock:
            return [
                copy.deepcopy(obj)
                for (res, ns, _), obj in self._objects.items()
                if res == resource
                and ns == namespace
                and _matches(obj, label_selector, field_selector)
            ]

    def patch_status(
        self, resource: str, namespace: str, name: str, status: Obj, **meta: Any
    ) -> Obj | None:
        """Merge ``status`` (one level deep) and metadata fields; None if the object is gone."""
        with self._lock:
            obj = self._objects.get((resource, namespace, name))
            if obj is None:
                return None
            obj.setdefault("status", {}).update(copy.deepcopy(status))
            obj["metadata"].update(meta)
            event = self._record("MODIFIED", resource, obj)
        self._notify(event)
        return copy.deepcopy(obj)

    def delete(
        self, resource: str, namespace: str, name: str, propagation: str | None = None
    ) -> Obj:
        with self._lock:
            obj = self._objects.pop((resource, namespace, name), None)
            if obj is None:
                raise _ApiError(HTTPStatus.NOT_FOUND, "NotFound", f'{resource} "{name}" not found')
            events = [self._record("DELETED", resource, obj)]
            if resource == "jobs" and propagation in ("Background", "Foreground"):
                uid = obj["metadata"]["uid"]
                for key, pod in list(self._objects.items()):
                    if (
                        key[0] == "pods"
                        and key[1] == namespace
                        and any(
                            ref.get("uid") == uid
                            for ref in pod["metadata"].get("ownerReferences", [])
                        )
                    ):
                        del self._objects[key]
                        events.append(self._record("DELETED", "pods", pod))
        for event in events:
            self._notify(event)
        return copy.deepcopy(obj)

    # --- fault injection -----------------------------------------------------------------

    def expire_history(self) -> None:
        """Forget every change so far: a watch resuming from an older version gets 410 Gone."""
        with self._lock:
            self._history.clear()
            self._oldest_resumable = self._version + 1  # even a watch that saw everything
            self._watch_generation += 1
            self._lock.notify_all()

    def break_watches(self) -> None:
        """End every open watch stream (as an API server restart or a load balancer does)."""
        with self._lock:
            self._watch_generation += 1
            self._lock.notify_all()

    # --- internals -----------------------------------------------------------------------

    def _record(self, type_: str, resource: str, obj: Obj) -> WatchEvent:
        self._version += 1
        obj["metadata"]["resourceVersion"] = str(self._version)
        if self._history.maxlen is not None and len(self._history) == self._history.maxlen:
            self._oldest_resumable = self._history[0].version
        event = WatchEvent(self._version, type_, resource, copy.deepcopy(obj))
        self._history.append(event)
        self._lock.notify_all()
        return event

    def _since(self, cursor: int) -> list[WatchEvent]:
        """The recorded changes after version ``cursor`` (versions are consecutive)."""
        if not self._history:
            return []
        start = max(cursor + 1 - self._history[0].version, 0)
        return list(itertools.islice(self._history, start, None))

    def _notify(self, event: WatchEvent) -> None:
        for listener in self._listeners:
            listener(event)

    def _list_body(self, resource: str, namespace: str, query: dict[str, str]) -> Obj:
        with self._lock:
            items = self.list_objects(
                resource, namespace, query.get("labelSelector", ""), query.get("fieldSelector", "")
            )
            version = self._version
            # the version a list gives is always one a watch can start from
            self._oldest_resumable = min(self._oldest_resumable, version)
        api_version, kind = _KINDS[resource]
        return {
            "apiVersion": api_version,
            "kind": f"{kind}List",
            "metadata": {"resourceVersion": str(version)},
            "items": items,
        }

    def _watch(
        self, resource: str, namespace: str, query: dict[str, str], timeout_s: float
    ) -> Iterator[Obj]:
        """Watch events as JSON objects, from ``resourceVersion`` (or a synthetic ADDED per
        existing object when none is given), until the timeout or :meth:`break_watches`."""
        labels, fields = query.get("labelSelector", ""), query.get("fieldSelector", "")
        start = query.get("resourceVersion", "")
        with self._lock:
            generation = self._watch_generation
            if start in ("", "0"):
                cursor = self._version
                initial = [
                    {"type": "ADDED", "object": copy.deepcopy(obj)}
                    for (res, ns, _), obj in self._objects.items()
                    if res == resource and ns == namespace and _matches(obj, labels, fields)
                ]
            else:
                cursor = int(start)
                initial = []
        yield from initial
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                gone = cursor < self._oldest_resumable
                pending = [] if gone else self._since(cursor)
                while not pending and not gone:
                    left = deadline - time.monotonic()
                    if self._closed or generation != self._watch_generation or left <= 0:
                        return
                    self._lock.wait(min(left, 1.0))
                    gone = cursor < self._oldest_resumable
                    pending = [] if gone else self._since(cursor)
            if gone:  # the client must list again
                yield _status_event(
                    HTTPStatus.GONE, "Expired", f"too old resource version: {cursor}"
                )
                return
            for event in pending:
                cursor = event.version
                ns = event.obj["metadata"].get("namespace")
                if (
                    event.resource == resource
                    and ns == namespace
                    and _matches(event.obj, labels, fields)
                ):
                    yield {"type": event.type, "object": event.obj}


def _status_event(code: HTTPStatus, reason: str, message: str) -> Obj:
    return {"type": "ERROR", "object": _status(code, reason, message)}


def _status(code: HTTPStatus, reason: str, message: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure",
        "code": int(code),
        "reason": reason,
        "message": message,
    }


class _ApiError(Exception):
    def __init__(self, code: HTTPStatus, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


def _matches(obj: Obj, label_selector: str, field_selector: str) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    for term in filter(None, (t.strip() for t in label_selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    for term in filter(None, (t.strip() for t in field_selector.split(","))):
        path, _, value = term.partition("=")
        node: Any = obj
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if str(node) != value:
            return False
    return True


def _handler(emulator: KubernetesEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the real client expects
        # headers and body go out in two writes: without this, Nagle's algorithm and the
        # client's delayed ACK hold every answer ~40 ms
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def do_DELETE(self) -> None:
            self._dispatch("DELETE")

        def _dispatch(self, method: str) -> None:
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            route = _ROUTE.match(url.path)
            body = self._body()
            if route is None:
                return self._reply(_status(HTTPStatus.NOT_FOUND, "NotFound", url.path), 404)
            ns, resource, name = route["ns"], route["resource"], route["name"]
            watching = (
                method == "GET" and name is None and query.get("watch", "").lower() in ("true", "1")
            )
            verb = {
                "POST": "create",
                "DELETE": "delete",
                "GET": "watch" if watching else "get" if name else "list",
            }[method]
            emulator.requests[f"{verb} {resource}"] += 1
            try:
                if verb == "watch":
                    timeout = float(query.get("timeoutSeconds") or 1800)
                    return self._stream(emulator._watch(resource, ns, query, timeout))
                if verb == "list":
                    return self._reply(emulator._list_body(resource, ns, query))
                if verb == "get":
                    obj = emulator.get(resource, ns, name)
                    if obj is None:
                        raise _ApiError(
                            HTTPStatus.NOT_FOUND, "NotFound", f'{resource} "{name}" not found'
                        )
                    return self._reply(obj)
                if verb == "create":
                    refusal = emulator.admission(resource, body) if emulator.admission else None
                    if refusal is not None:
                        raise _ApiError(HTTPStatus(refusal[0]), refusal[1], refusal[2])
                    return self._reply(emulator.create(resource, ns, body), 201)
                # the client sends it as a query parameter, kubectl in a DeleteOptions body
                policy = query.get("propagationPolicy") or body.get("propagationPolicy")
                return self._reply(emulator.delete(resource, ns, name, policy))
            except _ApiError as exc:
                self._reply(_status(exc.code, exc.reason, exc.message), int(exc.code))

        def _body(self) -> Obj:
            length = int(self.headers.get("Content-Length") or 0)
            if length <= 0:
                return {}
            data = json.loads(self.rfile.read(length) or b"{}")
            return data if isinstance(data, dict) else {}

        def _reply(self, body: Obj, code: int = 200) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, events: Iterator[Obj]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for event in events:
                    line = json.dumps(event).encode() + b"\n"
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
