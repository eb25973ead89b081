"""The controller side of the warm-worker protocol (no cluster, no HTTP: the handlers the
report server routes to), and ``kubetune worker``'s refusal without its controller env."""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from kubetune.cli.worker_cmd import _Slot, run_worker
from kubetune.executors.kubernetes.work_queue import Assignment, WorkQueue


def _queue(recorded: list[Assignment]) -> WorkQueue:
    queue = WorkQueue(recorded.append)
    queue.long_poll_s = 0.05
    return queue


def test_a_worker_gets_queued_trials_in_order_and_the_assignment_is_recorded_first() -> None:
    recorded: list[Assignment] = []
    queue = _queue(recorded)
    assert queue.handle_work({"worker": "w0/0"}) == (HTTPStatus.OK, {"wait": True})
    queue.put(3, 1, {"number": 3})
    queue.put(4, 1, {"number": 4})
    assert queue.handle_work({"worker": "w0/0"}) == (HTTPStatus.OK, {"trial": {"number": 3}})
    assert recorded == [Assignment(3, 1, "w0/0")] and recorded[0].job == "w0"
    status, _ = queue.handle_done({"worker": "w0/0", "number": 3, "attempt": 2})
    assert status is HTTPStatus.NOT_FOUND  # another attempt's done changes nothing
    assert queue.handle_done({"worker": "w0/0", "number": 3, "attempt": 1})[0] is HTTPStatus.OK
    event = queue.events.get_nowait()
    assert (event.kind, event.assignment.number) == ("done", 3)
    assert queue.handle_work({"worker": "w0/1"})[1] == {"trial": {"number": 4}}


def test_a_slot_asking_again_has_lost_its_trial_with_the_exit_code_it_gives() -> None:
    queue = _queue([])
    queue.put(7, 1, {"number": 7})
    queue.handle_work({"worker": "w1/0"})
    assert queue.handle_work({"worker": "w1/0", "previous_exit": -9}) == (
        HTTPStatus.OK,
        {"wait": True},
    )
    event = queue.events.get_nowait()
    assert (event.kind, event.assignment, event.exit_code) == (
        "lost",
        Assignment(7, 1, "w1/0"),
        -9,
    )
    assert queue.assignments() == []


def test_a_repeated_work_request_whose_answer_was_lost_gets_the_same_trial_again() -> None:
    """A controller killed between recording an assignment and its answer reaching the
    worker: the worker repeats the request (same id); the trial never ran, so it must not be
    failed as lost (that would cost it a retry). Its successor answers from the record."""
    recorded: list[Assignment] = []
    queue = _queue(recorded)
    queue.put(3, 1, {"number": 3})
    queue.put(4, 1, {"number": 4})
    first = queue.handle_work({"worker": "w0/0", "request": "a1"})
    assert first == (HTTPStatus.OK, {"trial": {"number": 3}})
    assert queue.handle_work({"worker": "w0/0", "request": "a1"}) == first  # the repeat
    assert recorded == [Assignment(3, 1, "w0/0", "a1")]  # recorded once, with the id
    assert queue.events.empty()
    # a new request (another id) while trial 3 is held: the slot lost it after all
    assert queue.handle_work({"worker": "w0/0", "request": "a2"})[1] == {"trial": {"number": 4}}
    assert queue.events.get_nowait().assignment == Assignment(3, 1, "w0/0", "a1")

    successor = _queue([])  # a restarted controller, from the durable record
    successor.adopt(Assignment(3, 1, "w0/0", "a1"), {"number": 3})
    assert successor.handle_work({"worker": "w0/0", "request": "a1"}) == first
    assert successor.events.empty() and successor.assignment(3) is not None
    # a restarted slot process (an exit code, a new id) has lost it
    successor.handle_work({"worker": "w0/0", "previous_exit": -9, "request": "b1"})
    event = successor.events.get_nowait()
    assert (event.kind, event.exit_code) == ("lost", -9)
    assert successor.handle_work({"worker": "w0/0", "request": 5})[0] is HTTPStatus.BAD_REQUEST


def test_a_failed_record_gives_the_trial_back_and_stop_ends_long_polls() -> None:
    def refuse(assignment: Assignment) -> None:
        raise OSError("object store down")

    queue = WorkQueue(refuse)
    queue.put(1, 1, {"number": 1})
    assert queue.handle_work({"worker": "w/0"})[0] is HTTPStatus.SERVICE_UNAVAILABLE
    assert queue.remove(1) is None  # queued again, not assigned
    answers: list[object] = []
    waiting = threading.Thread(target=lambda: answers.append(queue.handle_work({"worker": "w/0"})))
    waiting.start()
    queue.stop()
    waiting.join(timeout=5)
    assert answers == [(HTTPStatus.OK, {"stop": True})]
    assert queue.handle_work({"worker": "no-slot"})[0] is HTTPStatus.BAD_REQUEST


def test_kubetune_worker_refuses_to_start_without_its_controller_env(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KUBETUNE_REPORT_URL", raising=False)
    monkeypatch.setenv("KUBETUNE_REPORT_TOKEN", "secret-token-value")
    args = argparse.Namespace(worker="w", slots=1, slot=None, function=None)
    assert run_worker(args) == 2
    err = capsys.readouterr().err
    assert "KUBETUNE_REPORT_URL" in err and "secret-token-value" not in err


@contextmanager
def _controller_losing_its_first_answer() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A loopback stand-in for a controller: it reads the first work request and dies
    without answering (the connection closes); it answers the next one with stop."""
    bodies: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            if len(bodies) == 1:
                self.close_connection = True  # no answer: what a killed controller leaves
                return
            data = json.dumps({"stop": True}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", bodies
    finally:
        server.shutdown()
        server.server_close()


def test_a_worker_repeats_a_work_request_whose_answer_was_lost_with_the_same_id() -> None:
    args = argparse.Namespace(function=None, idle_timeout=30.0, previous_exit=None)
    with _controller_losing_its_first_answer() as (base, bodies):
        assert _Slot(base, "token", "w0/0", args).serve() == 0
    assert len(bodies) == 2
    first, repeat = bodies
    assert isinstance(first["request"], str) and first["request"]
    assert repeat == first  # the same request, id included: the controller can answer it
