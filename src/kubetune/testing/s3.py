"""Simulated S3 for tests and benchmarks: moto's S3 server on a loopback port that can be
stopped and started again on the same port (what a MinIO restart looks like to a client).

Objects live in moto's in-process backend, so they survive a restart of the server in the
same process, as a MinIO with a persistent volume keeps them. Production uses MinIO or AWS
S3; nothing here is used outside tests.

Requests are handled one at a time. moto's backend is not safe for concurrent requests on
one key: two conditional PUTs (``If-Match``) of the same version can both succeed, and a
GET racing a PUT of the same key can fail on a closed buffer (seen in CI under load: a lost
increment in the compare-and-swap counter test). MinIO and S3 make each request atomic;
serialising them gives the simulator the same guarantee, at the cost of throughput.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["SimulatedS3Server"]


class SimulatedS3Server:
    """``start()``/``stop()`` a moto S3 server on 127.0.0.1; the port is kept across
    restarts. ``endpoint`` is ``host:port``."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        if not self.port:
            raise RuntimeError("the simulated S3 server was never started")
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> SimulatedS3Server:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        if self._server is None:
            app = _one_at_a_time(DomainDispatcherApplication(create_backend_app))
            server = make_server(
                "127.0.0.1", self.port, app, threaded=True, request_handler=MotoRequestHandler
            )
            self.port = server.server_address[1]
            self._thread = threading.Thread(target=server.serve_forever, daemon=True)
            self._thread.start()
            self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join()
            self._server, self._thread = None, None

    def __enter__(self) -> SimulatedS3Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _one_at_a_time(app: _WSGIApp) -> _WSGIApp:
    """``app`` behind a lock, its response body read inside it (a GET's body is read from
    the object moto may replace)."""
    lock = threading.Lock()

    def serialised(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with lock:
            return list(app(environ, start_response))

    return serialised


def main() -> None:
    """``python -m kubetune.testing.s3``: serve simulated S3 on a free loopback port in its
    own process (benchmarks keep the server's memory out of the client's), print
    ``host:port`` on one line and serve until SIGTERM or SIGINT."""
    import signal
    import threading

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with SimulatedS3Server() as server:
        print(server.endpoint, flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
