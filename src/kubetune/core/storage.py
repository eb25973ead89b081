"""Where a study lives: a local journal file by default, or any optuna storage URL."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import optuna
from optuna.storages import BaseStorage
from optuna.storages.journal import JournalFileBackend, JournalStorage

from kubetune.core.optuna_compat import BaseJournalFileLock


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
    anything with ``://`` (``sqlite:///...``, ``postgresql://...``) -> optuna's RDB storage.
    """
    if url is None:
        if default_path is None:
            return optuna.storages.InMemoryStorage()
        return journal_storage(default_path)
    if url.startswith("journal:"):
        return journal_storage(Path(url.removeprefix("journal:")))
    if "://" in url:
        return url  # optuna builds an RDBStorage from the URL
    return journal_storage(Path(url))


def journal_storage(path: Path) -> JournalStorage:
    path.parent.mkdir(parents=True, exist_ok=True)
    backend = JournalFileBackend(str(path), lock_obj=FlockLock(f"{path}.flock"))
    return JournalStorage(backend)
