"""Intermediate values from trials in other processes or pods back to the controller.

Controller side, :class:`ReportServer`: a small HTTP endpoint (standard library only) that
turns ``POST /v1/reports`` into :class:`ReportEvent` for the executor's ``poll`` and holds
the request open until the loop answers "continue" or "prune". Trial side,
:class:`HttpReporter`: what ``kubetune trial`` hands to the trial code.

HTTP, not a socket protocol of our own, because a pod reaches its controller through a
Kubernetes Service the same way a local subprocess reaches 127.0.0.1. Every request carries
the run's bearer token; the token is never printed.

If the controller cannot be reached (or does not answer in time), the trial goes on
without pruning, says so once on stderr, and its result records why (``pruning_off``).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import queue
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO

from kubetune.core.executor import ReportEvent
from kubetune.core.trial import ReportChannel, TrialPruned

__all__ = ["HttpReporter", "ReportServer", "Route"]

# An extra endpoint (the worker pool's work queue): JSON body in, status and JSON body out.
Route = Callable[[dict[str, Any]], tuple[HTTPStatus, dict[str, Any]]]

REPORT_PATH = "/v1/reports"
# A trial posts here once its code starts: a pod's deadline counts from then, not from
# container start (image pull, interpreter start-up and imports are not the trial's time).
STARTED_PATH = "/v1/started"
# How long a trial waits for the loop's answer before it goes on without pruning. The loop
# answers on its next poll (well under a second); this only matters if it is stuck.
ANSWER_TIMEOUT_S = 60.0
_MAX_BODY = 64 * 1024


@dataclass
class _Pending:
    event: ReportEvent
    answered: threading.Event = field(default_factory=threading.Event)
    prune: bool = False


class ReportServer:
    """Receives reports for the trials registered with :meth:`expect`.

    ``events`` yields the reports in arrival order; :meth:`answer` releases the waiting
    trial. Reports of trials not (or no longer) registered are refused with 404, so a
    trial left over from a cancelled attempt cannot feed the study.
    """

    def __init__(
        self,
        token: str,
        host: str = "127.0.0.1",
        port: int = 0,
        routes: Mapping[str, Route] | None = None,
    ) -> None:
        self._token = token
        self._routes: dict[str, Route] = {
            REPORT_PATH: self._receive, STARTED_PATH: self._receive_started, **(routes or {})
        }  # fmt: skip
        self.events: queue.SimpleQueue[ReportEvent] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._expected: dict[int, int] = {}  # trial number -> attempt
        self._pending: dict[int, _Pending] = {}
        self._started: dict[int, float] = {}  # trial number -> time.monotonic() of its start
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="kubetune-reports", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}{REPORT_PATH}"

    def channel(self) -> ReportChannel:
        return ReportChannel(url=self.url, token=self._token)

    def expect(self, number: int, attempt: int) -> None:
        with self._lock:
            self._expected[number] = attempt

    def started_at(self, number: int) -> float | None:
        """When the expected trial said its code started (``time.monotonic()``), if it did."""
        with self._lock:
            return self._started.get(number)

    def forget(self, number: int) -> None:
        """The trial is over: refuse its reports and release it if it still waits."""
        with self._lock:
            self._expected.pop(number, None)
            self._started.pop(number, None)
            pending = self._pending.pop(number, None)
        if pending is not None:
            pending.prune = True
            pending.answered.set()

    def answer(self, number: int, prune: bool) -> None:
        with self._lock:
            pending = self._pending.pop(number, None)
        if pending is not None:
            pending.prune = prune
            pending.answered.set()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            waiting = list(self._pending.values())
            self._pending.clear()
        for pending in waiting:
            pending.answered.set()

    # --- request handling (server threads) --------------------------------------------

    def _receive_started(self, body: dict[str, Any]) -> tuple[HTTPStatus, dict[str, Any]]:
        try:
            number, attempt = int(body["number"]), int(body["attempt"])
        except (KeyError, TypeError, ValueError):
            return HTTPStatus.BAD_REQUEST, {"error": "expected number, attempt"}
        with self._lock:
            if self._expected.get(number) != attempt:
                return HTTPStatus.NOT_FOUND, {"error": f"trial {number} is not running here"}
            self._started.setdefault(number, time.monotonic())
        return HTTPStatus.OK, {}

    def _receive(self, body: dict[str, Any]) -> tuple[HTTPStatus, dict[str, Any]]:
        try:
            number, attempt = int(body["number"]), int(body["attempt"])
            step, value = int(body["step"]), float(body["value"])
        except (KeyError, TypeError, ValueError):
            return HTTPStatus.BAD_REQUEST, {"error": "expected number, attempt, step, value"}
        with self._lock:
            if self._expected.get(number) != attempt:
                return HTTPStatus.NOT_FOUND, {"error": f"trial {number} is not running here"}
            pending = _Pending(ReportEvent(number=number, step=step, value=value))
            self._pending[number] = pending
        self.events.put(pending.event)
        if not pending.answered.wait(ANSWER_TIMEOUT_S):
            with self._lock:
                self._pending.pop(number, None)
            return HTTPStatus.GATEWAY_TIMEOUT, {"error": "no answer from the loop in time"}
        return HTTPStatus.OK, {"prune": pending.prune}

    def _authorized(self, header: str | None) -> bool:
        expected = f"Bearer {self._token}"
        return header is not None and hmac.compare_digest(header.encode(), expected.encode())

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            # the answer's headers and body are two writes: without this, Nagle's algorithm
            # and the client's delayed ACK hold each answer back ~40 ms
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                receive = server._routes.get(self.path)
                if receive is None:
                    return self._reply(HTTPStatus.NOT_FOUND, {"error": "unknown path"})
                if not server._authorized(self.headers.get("Authorization")):
                    return self._reply(HTTPStatus.UNAUTHORIZED, {"error": "bad token"})
                length = int(self.headers.get("Content-Length") or 0)
                if length <= 0 or length > _MAX_BODY:
                    return self._reply(HTTPStatus.BAD_REQUEST, {"error": "bad body size"})
                try:
                    body = json.loads(self.rfile.read(length))
                except ValueError:
                    return self._reply(HTTPStatus.BAD_REQUEST, {"error": "body is not JSON"})
                if not isinstance(body, dict):
                    return self._reply(HTTPStatus.BAD_REQUEST, {"error": "expected an object"})
                self._reply(*receive(body))

            def _reply(self, status: HTTPStatus, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # one line per report would drown the progress output

        return Handler


class HttpReporter:
    """The trial side: report a value, wait for the controller's answer, maybe stop."""

    def __init__(
        self,
        channel: ReportChannel,
        number: int,
        attempt: int,
        *,
        stderr: TextIO | None = None,
        timeout_s: float = ANSWER_TIMEOUT_S + 10,
    ) -> None:
        self._channel = channel
        self._number = number
        self._attempt = attempt
        self._stderr = stderr or sys.stderr
        self._timeout_s = timeout_s
        self.pruning_off: str | None = None  # why reports stopped reaching the controller

    def started(self) -> None:
        """Tell the controller the trial's code starts now (its deadline counts from here)."""
        if not self._channel.url.endswith(REPORT_PATH):
            return  # a channel of another shape: the controller falls back to its own clock
        url = self._channel.url[: -len(REPORT_PATH)] + STARTED_PATH
        body = {"number": self._number, "attempt": self._attempt}
        # if this fails, the report that follows says whether the controller can be reached
        with contextlib.suppress(OSError, ValueError):
            self._post(url, body, timeout=10.0)

    def _post(self, url: str, body: dict[str, Any], timeout: float) -> Any:
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"reports go to http(s) URLs only, not {url!r}")
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
            url,
            data=json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self._channel.token}",
            },
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return json.loads(response.read())

    def report(self, step: int, value: float) -> None:
        if self.pruning_off is not None:
            return
        if urllib.parse.urlsplit(self._channel.url).scheme not in ("http", "https"):
            # urllib would also open file:// and other schemes a request file might name
            return self._give_up("the report URL is not http(s)")
        body = {"number": self._number, "attempt": self._attempt, "step": step, "value": value}
        request = urllib.request.Request(  # noqa: S310 (http(s) only, checked above)
            self._channel.url,
            data=json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self._channel.token}",
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:  # noqa: S310
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return self._give_up(f"the controller answered HTTP {exc.code}")
        except (OSError, ValueError) as exc:  # refused, unreachable, timed out, garbled
            reason = getattr(exc, "reason", None) or exc
            return self._give_up(f"the controller at {self._channel.url} is unreachable ({reason})")
        if isinstance(answer, dict) and answer.get("prune") is True:
            raise TrialPruned(f"pruned at step {step}")

    def _give_up(self, reason: str) -> None:
        self.pruning_off = reason
        print(f"trial {self._number}: {reason}; continuing without pruning", file=self._stderr)
