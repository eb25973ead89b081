"""A list-then-watch cache of the objects matching a label selector (Jobs, Pods).

One background thread per kind: a list gives the state and a resourceVersion, a watch
from that version streams the changes; when the watch ends (server timeout) it resumes
from the last version seen; on ``410 Gone`` (the history it needs was compacted) it lists
again; on any other error it lists again after an exponential backoff. So the number of
API requests depends on time and on watch expiries, not on how many trials run, and the
executor reads every Job's state from memory.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import watch
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

__all__ = ["Informer"]

_log = logging.getLogger(__name__)
Obj = dict[str, Any]
ListFunction = Callable[..., Any]


class Informer:
    """Keeps ``cache`` (name -> raw object) in step with the cluster; calls ``on_change(name)``
    (from its thread) after every change, deletions included."""

    def __init__(
        self,
        list_fn: ListFunction,
        namespace: str,
        label_selector: str,
        on_change: Callable[[str], None],
        *,
        watch_timeout_s: int = 300,
        backoff_s: tuple[float, float] = (0.2, 30.0),
        kind: str = "objects",
        index_label: str | None = None,
    ) -> None:
        self._list_fn = list_fn
        self._namespace = namespace
        self._selector = label_selector
        self._on_change = on_change
        self._watch_timeout_s = watch_timeout_s
        self._backoff_min, self._backoff_max = backoff_s
        self._kind = kind
        self._lock = threading.Lock()
        self._cache: dict[str, Obj] = {}
        # label value -> names: a Job's pods without scanning every pod of the study
        self._index_label = index_label
        self._index: dict[str, set[str]] = {}
        self._stopped = threading.Event()
        self._synced = threading.Event()
        self._watch: watch.Watch | None = None
        self.lists = 0  # how often it had to list (the first time, then after 410/errors)
        # False from an error until the next successful list: the cache may be stale
        self.healthy = False
        self.last_error: str | None = None
        # monotonic time of the first failure since the last successful list or watch
        self._failing_since: float | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"kubetune-watch-{kind}", daemon=True
        )

    def start(self, sync_timeout_s: float = 30.0) -> None:
        """Start, and wait for the first list (so the cache is complete when this returns)."""
        self._thread.start()
        if not self._synced.wait(sync_timeout_s):
            raise ConnectionError(
                f"cannot list {self._kind} from the Kubernetes API within {sync_timeout_s:g}s"
                + (f": {self.last_error}" if self.last_error else "")
            )

    def stop(self) -> None:
        self._stopped.set()
        if self._watch is not None:
            self._watch.stop()
        # The thread may sit in a read until the server ends the watch; it is a daemon and
        # exits on its next event, so do not wait long for it.
        if self._thread.ident is not None:
            self._thread.join(timeout=0.2)

    def down_for(self, now: float) -> float:
        """Seconds since the API last answered this informer (0 while it answers)."""
        since = self._failing_since
        return 0.0 if since is None else max(now - since, 0.0)

    def get(self, name: str) -> Obj | None:
        with self._lock:
            return self._cache.get(name)

    def items(self) -> list[Obj]:
        with self._lock:
            return list(self._cache.values())

    def indexed(self, value: str) -> list[Obj]:
        """The objects whose ``index_label`` is ``value``."""
        with self._lock:
            return [self._cache[n] for n in self._index.get(value, ()) if n in self._cache]

    def _put(self, name: str, obj: Obj | None) -> None:
        """Set (or, with None, drop) one cached object and its index entry; under the lock."""
        old = self._cache.pop(name, None)
        if self._index_label is not None and old is not None:
            key = (old["metadata"].get("labels") or {}).get(self._index_label)
            self._index.get(key or "", set()).discard(name)
        if obj is None:
            return
        self._cache[name] = obj
        if self._index_label is not None:
            key = (obj["metadata"].get("labels") or {}).get(self._index_label)
            if key is not None:
                self._index.setdefault(key, set()).add(name)

    # --- the thread ----------------------------------------------------------------------

    def _run(self) -> None:
        version: str | None = None
        backoff = self._backoff_min
        while not self._stopped.is_set():
            try:
                if version is None:
                    version = self._relist()
                version = self._follow(version)
                backoff = self._backoff_min
            except ApiException as exc:
                version = None
                if exc.status == 410:  # too old: list again at once
                    _log.info("watch of %s expired (410); listing again", self._kind)
                    continue
                self._failed(f"HTTP {exc.status} {exc.reason}", backoff)
                backoff = min(backoff * 2, self._backoff_max)
            except (HTTPError, OSError, ValueError, KeyError, TypeError) as exc:
                # unreachable, cut off, or an answer we cannot read: never let the thread die
                version = None
                self._failed(f"{type(exc).__name__}: {exc}", backoff)
                backoff = min(backoff * 2, self._backoff_max)

    def _failed(self, reason: str, backoff: float) -> None:
        self.healthy = False
        self.last_error = reason
        if self._failing_since is None:
            self._failing_since = time.monotonic()
        _log.warning("watching %s failed (%s); listing again in %.1fs", self._kind, reason, backoff)
        self._stopped.wait(backoff)

    def _relist(self) -> str:
        self.lists += 1
        response = self._list_fn(
            self._namespace,
            label_selector=self._selector,
            _preload_content=False,  # raw JSON: no model objects for a large list
            _request_timeout=60,
        )
        try:
            body = _json(response.data)
        finally:
            response.release_conn()
        fresh = {item["metadata"]["name"]: item for item in body.get("items") or []}
        with self._lock:
            gone = set(self._cache) - set(fresh)
            changed = [
                name
                for name, item in fresh.items()
                if self._cache.get(name, {}).get("metadata", {}).get("resourceVersion")
                != item["metadata"].get("resourceVersion")
            ]
            for name in gone:
                self._put(name, None)
            for name, item in fresh.items():
                self._put(name, item)
        self.healthy = True
        self._failing_since = None
        self._synced.set()
        for name in [*gone, *changed]:
            self._on_change(name)
        return str(body.get("metadata", {}).get("resourceVersion") or "")

    def _follow(self, version: str) -> str:
        """Stream changes from ``version`` until the server ends the watch; the last version."""
        self._watch = watch.Watch()

        def raw_list(*args: Any, **kwargs: Any) -> Any:
            # No docstring, so the watch yields raw dicts: no model objects to build (and no
            # client-side validation to trip over) for every event.
            return self._list_fn(*args, **kwargs)

        stream = self._watch.stream(
            raw_list,
            self._namespace,
            label_selector=self._selector,
            resource_version=version,
            timeout_seconds=self._watch_timeout_s,
            _request_timeout=self._watch_timeout_s + 30,  # a dead connection ends too
        )
        for event in stream:
            if self._stopped.is_set():
                break
            raw: Obj = event["raw_object"]
            name = raw["metadata"]["name"]
            version = raw["metadata"].get("resourceVersion") or version
            with self._lock:
                self._put(name, None if event["type"] == "DELETED" else raw)
            self._on_change(name)
        return version


def _json(data: bytes) -> Obj:
    import json

    body = json.loads(data)
    if not isinstance(body, dict):
        raise ValueError("the API answered a list with something that is not an object")
    return body
