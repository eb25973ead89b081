"""Where a study lives: a local journal file by default, a database URL (PostgreSQL in a
cluster), or optuna's gRPC storage proxy in front of a database (``grpc://host:port``), which
many trial pods can share without each holding database connections."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, BinaryIO

import optuna
from optuna.storages import BaseStorage
from optuna.storages.journal import JournalFileBackend, JournalStorage

from kubetune.core.optuna_compat import BaseJournalFileLock
from kubetune.core.redact import redact_url, url_password
from kubetune.core.waiting_index import WaitingIndexedCachedStorage, WaitingIndexedJournalStorage
from kubetune.errors import SpecError, StorageError

GRPC_SCHEME = "grpc://"
GRPC_WAIT_S = 60.0

_TAIL_BYTES = 4 * 1024 * 1024  # far more than one record


class FlockLock(BaseJournalFileLock):
    """An advisory ``flock`` on a side file.

    optuna's default file locks survive a SIGKILL of their holder and then make the next
    run wait out a grace period; the kernel drops a flock when its holder dies, so a
    resumed experiment starts at once.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def open_storage(url: str | None, default_path: Path | None = None) -> BaseStorage | str:
    """Resolve a storage setting.

    ``None`` -> a journal file at ``default_path`` (or in memory without one);
    ``journal:PATH`` or a path ending in ``.journal``/``.log`` -> a journal file;
    ``grpc://HOST:PORT`` -> optuna's gRPC storage proxy (``kubetune study-proxy`` serves one);
    anything else with ``://`` (``sqlite:///...``, ``postgresql://...``) -> optuna's RDB
    storage, which reconnects when the database drops its connections (``core.rdb_storage``).
    """
    if url is None:
        if default_path is None:
            return optuna.storages.InMemoryStorage()
        return journal_storage(default_path)
    if url.startswith("journal:"):
        return journal_storage(Path(url.removeprefix("journal:")))
    if url.startswith(GRPC_SCHEME):
        return grpc_proxy_storage(url)
    if "://" in url:
        return database_storage(url)
    return journal_storage(Path(url))


def database_storage(url: str) -> BaseStorage:
    """optuna's RDB storage for ``url``, riding out dropped connections; an unusable URL or
    an unreachable server is a StorageError that shows the URL without its password."""
    from kubetune.core.rdb_storage import ReconnectingRDBStorage

    try:
        # optuna would put its trial cache in front of the database; this is that cache
        return WaitingIndexedCachedStorage(ReconnectingRDBStorage(url))
    except StorageError:
        raise
    except Exception as exc:  # sqlalchemy's and the driver's errors: no common base
        cause = getattr(exc, "orig", None) or exc
        reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(exc).__name__
        password = url_password(url)
        if password:
            reason = reason.replace(password, "***")
        raise StorageError(
            f"storage: cannot open the study database {redact_url(url)}: {reason}"
        ) from None


def grpc_proxy_storage(url: str, *, wait_s: float = GRPC_WAIT_S) -> BaseStorage:
    """A client of optuna's gRPC storage proxy at ``grpc://HOST:PORT``, once it answers.

    Waiting (up to ``wait_s``) lets pods start together with the proxy; a proxy that never
    answers is one clear error instead of a gRPC traceback at the first storage call.
    """
    host, _, port = url.removeprefix(GRPC_SCHEME).rstrip("/").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SpecError(f"storage: {url!r} is not grpc://HOST:PORT")
    try:
        import grpc  # noqa: F401  (optuna imports it lazily, and fails later and less clearly)
    except ImportError:
        raise SpecError(
            "storage: grpc:// needs the grpc extra: pip install 'kubetune[grpc]'"
        ) from None
    from optuna.storages import GrpcStorageProxy

    # The proxy is experimental in optuna; its warning would repeat on every open.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        proxy = GrpcStorageProxy(host=host.strip("[]"), port=int(port))
    try:
        proxy.wait_server_ready(timeout=wait_s)
    except ConnectionError:
        proxy.close()
        raise SpecError(
            f"storage: no gRPC storage proxy answers at {url} (waited {wait_s:g}s);"
            " start one with `kubetune study-proxy`"
        ) from None
    return proxy


def journal_storage(path: Path) -> JournalStorage:
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FlockLock(f"{path}.flock")
    lock.acquire()  # no writer may append while the tail is checked
    try:
        repair_torn_tail(path)
    finally:
        lock.release()
    return WaitingIndexedJournalStorage(_AllOrNothingJournal(str(path), lock))


class _AllOrNothingJournal(JournalFileBackend):
    """optuna's journal file, but an append that fails midway (a full disk) is undone.

    Otherwise the half-written record stays, this process's next append is glued to it, and
    the journal becomes unreadable while the process goes on (a lease release, a cancel).
    A killed writer cannot undo anything: ``repair_torn_tail`` handles that at the next open.
    """

    def __init__(self, file_path: str, lock: FlockLock) -> None:
        super().__init__(file_path, lock_obj=lock)
        self._path = file_path
        self._flock = lock

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs).encode()
        self._flock.acquire()
        try:
            with open(self._path, "ab") as fh:
                size = os.fstat(fh.fileno()).st_size
                try:
                    write_records(fh, data)
                except OSError:
                    with contextlib.suppress(OSError):
                        fh.truncate(size)
                    raise
        finally:
            self._flock.release()


def write_records(fh: BinaryIO, data: bytes) -> None:
    """Write and fsync journal records (one place, so tests can make the disk fill up)."""
    fh.write(data)
    fh.flush()
    os.fsync(fh.fileno())


def repair_torn_tail(path: Path) -> Path | None:
    """Cut a half-written last record off a journal file; return the backup made, if any.

    A writer killed mid-line (or stopped by a full disk) leaves a record without its
    newline. optuna skips it when reading, but the next append would glue a new record to
    it, and from then on no load of the journal succeeds. The whole file is copied aside
    first, so nothing is ever thrown away.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    keep = _complete_prefix(path, size)
    if keep == size:
        return None
    backup = path.with_name(f"{path.name}.torn-{int(time.time())}")
    shutil.copyfile(path, backup)
    with open(path, "r+b") as fh:
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
    return backup


def _complete_prefix(path: Path, size: int) -> int:
    """Bytes of ``path`` up to and including its last newline-terminated JSON record."""
    with open(path, "rb") as fh:
        start = max(0, size - _TAIL_BYTES)
        fh.seek(start)
        tail = fh.read()
        if start > 0 and b"\n" not in tail[:-1]:  # one huge record: look at all of it
            fh.seek(0)
            start, tail = 0, fh.read()
    keep = len(tail) if tail.endswith(b"\n") else tail.rfind(b"\n") + 1
    # A record that ends in a newline but is not JSON is torn too (written in pieces).
    while keep > 0:
        begin = tail.rfind(b"\n", 0, keep - 1) + 1
        if (begin == 0 and start > 0) or _is_json(tail[begin:keep]):
            break
        keep = begin
    return start + keep


def _is_json(line: bytes) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True
