"""Where a study lives: a local journal file by default, or any optuna storage URL."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, BinaryIO

import optuna
from optuna.storages import BaseStorage
from optuna.storages.journal import JournalFileBackend, JournalStorage

from kubetune.core.optuna_compat import BaseJournalFileLock
from kubetune.core.redact import redact_url, url_password
from kubetune.errors import StorageError

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
    anything with ``://`` (``sqlite:///...``, ``postgresql://...``) -> optuna's RDB storage,
    which reconnects when the database drops its connections (``core.rdb_storage``).
    """
    if url is None:
        if default_path is None:
            return optuna.storages.InMemoryStorage()
        return journal_storage(default_path)
    if url.startswith("journal:"):
        return journal_storage(Path(url.removeprefix("journal:")))
    if "://" in url:
        return _database_storage(url)
    return journal_storage(Path(url))


def _database_storage(url: str) -> BaseStorage:
    """optuna's RDB storage for ``url``, riding out dropped connections; an unusable URL or
    an unreachable server is a StorageError that shows the URL without its password."""
    from kubetune.core.rdb_storage import ReconnectingRDBStorage

    try:
        return ReconnectingRDBStorage(url)
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


def journal_storage(path: Path) -> JournalStorage:
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FlockLock(f"{path}.flock")
    lock.acquire()  # no writer may append while the tail is checked
    try:
        repair_torn_tail(path)
    finally:
        lock.release()
    return JournalStorage(_AllOrNothingJournal(str(path), lock))


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
