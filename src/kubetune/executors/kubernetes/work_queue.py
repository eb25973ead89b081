"""The controller side of the warm-worker protocol: trials waiting for a worker, and who
runs what.

Two endpoints on the controller's report server (same bearer token as reports):

    POST /v1/work  {"worker": "<job>/<slot>", "previous_exit": null | int, "request": id}
        -> {"trial": {...}} | {"wait": true} (nothing queued within the long poll)
           | {"stop": true} (the controller is closing)
    POST /v1/done  {"worker": ..., "number": n, "attempt": a}   (result is in the store)

A worker slot that asks for work while the controller still has a trial assigned to it
has lost that trial (its process died and was restarted, or its pod was replaced):
``previous_exit`` is the exit code its supervisor saw, if any. Both that and a finished
trial become :class:`WorkEvent` for the executor's ``poll``. Except when the slot repeats
the very request (same ``request`` id, which a worker keeps while it retries one call) that
got the trial: the answer was lost on its way (the controller that gave it was killed, the
connection broke), the trial never ran, and the repeat gets the same trial again. The id
is in the durable assignment record, so a restarted controller answers the repeat too;
without it a controller death at that moment would cost the trial a retry.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

__all__ = ["DONE_PATH", "WORK_PATH", "Assignment", "WorkEvent", "WorkQueue"]

WORK_PATH = "/v1/work"
DONE_PATH = "/v1/done"
# How long a work request waits for a trial before answering "wait": short enough that a
# closing controller is noticed, long enough that idle workers cost few requests.
LONG_POLL_S = 2.0


@dataclass(frozen=True)
class Assignment:
    number: int
    attempt: int
    worker: str  # "<worker Job name>/<slot>"
    ask: str | None = None  # the id of the work request it answered (see the module doc)

    @property
    def job(self) -> str:
        return self.worker.rsplit("/", 1)[0]


@dataclass(frozen=True)
class WorkEvent:
    kind: str  # "done" | "lost"
    assignment: Assignment
    exit_code: int | None = None  # "lost": the slot's exit code, if its supervisor saw it


class WorkQueue:
    """Thread-safe: the server's threads hand out work, the executor's thread queues it.

    ``on_assign(assignment)`` runs (in the server thread) before the worker gets the
    trial: the executor records the assignment durably there. ``on_event()`` runs after
    each new event.
    """

    def __init__(
        self,
        on_assign: Callable[[Assignment], None],
        on_event: Callable[[], None] = lambda: None,
    ) -> None:
        self._cond = threading.Condition()
        self._waiting: collections.OrderedDict[int, tuple[int, dict[str, Any]]] = (
            collections.OrderedDict()
        )
        self._assigned: dict[int, Assignment] = {}
        self._handed: dict[int, dict[str, Any]] = {}  # what each assigned trial was sent as
        self._by_worker: dict[str, int] = {}
        self._stopping = False
        self.checked_in: set[str] = set()  # worker Jobs whose workers have asked for work
        self._on_assign = on_assign
        self._on_event = on_event  # wakes the executor's poll
        self.events: queue.SimpleQueue[WorkEvent] = queue.SimpleQueue()
        self.long_poll_s = LONG_POLL_S

    # --- the executor's side --------------------------------------------------------------

    def put(self, number: int, attempt: int, trial: dict[str, Any]) -> None:
        with self._cond:
            self._waiting[number] = (attempt, trial)
            self._cond.notify()

    def adopt(self, assignment: Assignment, trial: dict[str, Any]) -> None:
        """A trial a previous controller handed out as ``trial`` (read from its record)."""
        with self._cond:
            self._assigned[assignment.number] = assignment
            self._handed[assignment.number] = trial
            self._by_worker[assignment.worker] = assignment.number

    def remove(self, number: int) -> Assignment | None:
        """Forget the trial: unqueue it, or release its worker (returned)."""
        with self._cond:
            self._waiting.pop(number, None)
            self._handed.pop(number, None)
            assignment = self._assigned.pop(number, None)
            if assignment is not None and self._by_worker.get(assignment.worker) == number:
                del self._by_worker[assignment.worker]
            return assignment

    def waiting(self) -> list[int]:
        """The trials no worker has taken yet."""
        with self._cond:
            return list(self._waiting)

    def assignment(self, number: int) -> Assignment | None:
        with self._cond:
            return self._assigned.get(number)

    def assignments(self) -> list[Assignment]:
        with self._cond:
            return list(self._assigned.values())

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    # --- the workers' side (server threads) ----------------------------------------------

    def handle_work(self, body: dict[str, Any]) -> tuple[HTTPStatus, dict[str, Any]]:
        worker = body.get("worker")
        previous = body.get("previous_exit")
        ask = body.get("request")
        if not isinstance(worker, str) or "/" not in worker:
            return HTTPStatus.BAD_REQUEST, {"error": "expected worker: '<job>/<slot>'"}
        if previous is not None and not isinstance(previous, int):
            return HTTPStatus.BAD_REQUEST, {"error": "previous_exit must be an integer"}
        if ask is not None and not isinstance(ask, str):
            return HTTPStatus.BAD_REQUEST, {"error": "request must be a string"}
        deadline = time.monotonic() + self.long_poll_s
        with self._cond:
            self.checked_in.add(worker.rsplit("/", 1)[0])
            held = self._by_worker.get(worker)
            if held is not None:
                assignment = self._assigned[held]
                if ask is not None and previous is None and assignment.ask == ask:
                    # a repeat of the request that got it: the answer was lost, send it again
                    return HTTPStatus.OK, {"trial": self._handed[held]}
                del self._by_worker[worker], self._assigned[held]
                self._handed.pop(held, None)
                self.events.put(WorkEvent("lost", assignment, previous))
                self._on_event()
            while not self._waiting and not self._stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    return HTTPStatus.OK, {"wait": True}
                self._cond.wait(left)
            if self._stopping:
                return HTTPStatus.OK, {"stop": True}
            number, (attempt, trial) = self._waiting.popitem(last=False)
            assignment = Assignment(number, attempt, worker, ask)
            self._assigned[number] = assignment
            self._handed[number] = trial
            self._by_worker[worker] = number
        try:
            self._on_assign(assignment)
        except Exception:  # could not record it: give it to another worker
            with self._cond:
                self._assigned.pop(number, None)
                self._handed.pop(number, None)
                self._by_worker.pop(worker, None)
                self._waiting[number] = (attempt, trial)
                self._waiting.move_to_end(number, last=False)
            return HTTPStatus.SERVICE_UNAVAILABLE, {"error": "cannot record the assignment"}
        return HTTPStatus.OK, {"trial": trial}

    def handle_done(self, body: dict[str, Any]) -> tuple[HTTPStatus, dict[str, Any]]:
        try:
            worker, number, attempt = str(body["worker"]), int(body["number"]), int(body["attempt"])
        except (KeyError, TypeError, ValueError):
            return HTTPStatus.BAD_REQUEST, {"error": "expected worker, number, attempt"}
        with self._cond:
            assignment = self._assigned.get(number)
            if assignment is None or (assignment.attempt, assignment.worker) != (attempt, worker):
                error = f"trial {number} is not assigned to {worker}"
                return HTTPStatus.NOT_FOUND, {"error": error}
            del self._assigned[number]
            self._handed.pop(number, None)
            self._by_worker.pop(worker, None)
        self.events.put(WorkEvent("done", assignment))
        self._on_event()
        return HTTPStatus.OK, {}
