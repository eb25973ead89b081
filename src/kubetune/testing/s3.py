"""Simulated S3 for tests and benchmarks: moto's S3 server on a loopback port that can be
stopped and started again on the same port (what a MinIO restart looks like to a client).

Objects live in moto's in-process backend, so they survive a restart of the server in the
same process, as a MinIO with a persistent volume keeps them. Production uses MinIO or AWS
S3; nothing here is used outside tests.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SimulatedS3Server"]


class SimulatedS3Server:
    """``start()``/``stop()`` a moto S3 server on 127.0.0.1; the port is kept across
    restarts. ``endpoint`` is ``host:port``."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self._server: Any = None

    @property
    def endpoint(self) -> str:
        if not self.port:
            raise RuntimeError("the simulated S3 server was never started")
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> SimulatedS3Server:
        from moto.server import ThreadedMotoServer

        if self._server is None:
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
            server.start()
            self.port = server.get_host_and_port()[1]
            self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> SimulatedS3Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


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
