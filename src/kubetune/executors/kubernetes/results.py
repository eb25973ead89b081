"""Where a trial pod finds its request and leaves its result: the object store.

The controller writes ``<trials_uri>/<job name>/request.json`` before it creates the Job;
the pod runs ``kubetune trial --request <that> --output .../result.json`` and writes the
result there with one atomic put; the controller reads it once the Job has finished. So
results survive a controller restart (an adopted Job's result is still read), and nothing
is scraped from logs. The request holds no token: the pod gets it as env.
"""

from __future__ import annotations

import json
from dataclasses import replace

from kubetune.core.trial import TrialOutcome, TrialRequest, UnusableRequestError
from kubetune.errors import StorageError
from kubetune.storage import ObjectStore

__all__ = ["TrialFiles"]


class TrialFiles:
    def __init__(self, store: ObjectStore) -> None:
        self._store = store

    def request_uri(self, job: str) -> str:
        return self._store.uri(f"{job}/request.json")

    def result_uri(self, job: str) -> str:
        return self._store.uri(f"{job}/result.json")

    def write_request(self, job: str, request: TrialRequest) -> None:
        data = json.dumps(replace(request, report=None).to_dict(), indent=2).encode()
        self._store.put_bytes(f"{job}/request.json", data)

    def write_assignment(self, job: str, worker: str, ask: str | None = None) -> None:
        """Which warm worker runs the attempt, and the id of the work request it answered:
        a restarted controller re-attaches to the worker (and answers a repeat of that
        request with the same trial)."""
        record = {"worker": worker, "request": ask}
        self._store.put_bytes(f"{job}/worker.json", json.dumps(record).encode())

    def read_assignment(self, job: str) -> tuple[str, str | None] | None:
        """``(worker, request id)`` from the record, or None (none, or unreadable)."""
        try:
            record = json.loads(self._store.get_bytes(f"{job}/worker.json"))
            worker, ask = record.get("worker"), record.get("request")
        except (StorageError, OSError, ValueError, AttributeError):
            return None
        if not isinstance(worker, str):
            return None
        return worker, ask if isinstance(ask, str) else None

    def read_result(self, job: str) -> TrialOutcome | None:
        """The result the pod wrote, or None (none yet, or unreadable: judged by exit code)."""
        try:
            return TrialOutcome.from_dict(json.loads(self._store.get_bytes(f"{job}/result.json")))
        except (StorageError, OSError, ValueError, UnusableRequestError):
            return None
