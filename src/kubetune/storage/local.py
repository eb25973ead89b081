""":class:`LocalObjectStore`: an object store on a local directory.

Writes go through :mod:`kubetune.storage.atomic` (temp file + ``os.replace``), so readers
never lock. Writers serialise their final step on an exclusive ``flock`` of the store's
root directory itself (no lock file to leave behind): a compare-and-swap reads, compares
and renames while holding it, and plain puts and deletes take it for their rename or
unlink, so none of them can slip between a CAS's read and its rename. The kernel drops a
flock when its holder exits or is killed, so a crashed writer never blocks the others.

The version token is the sha256 of the content: equal content means equal state, so the
swap stays correct even if an object was changed and changed back (S3 ETags of simple
uploads are content hashes too).

The folder must be on a local filesystem (``flock`` on NFS is not reliable everywhere).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from kubetune.core.paths import local_path
from kubetune.errors import StorageError
from kubetune.storage.atomic import atomic_write_chunks, fsync_dir, write_temp
from kubetune.storage.base import (
    RESERVED_PREFIXES,
    ObjectNotFoundError,
    ObjectStore,
    validate_key,
)

__all__ = ["LocalObjectStore", "content_token"]

_CHUNK = 1024 * 1024


def content_token(data: bytes) -> str:
    """The local store's version token of an object holding ``data``."""
    return hashlib.sha256(data).hexdigest()


def _read_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            yield chunk


def _hidden(name: str) -> bool:
    return name.startswith(RESERVED_PREFIXES)


class LocalObjectStore(ObjectStore):
    """An :class:`ObjectStore` on a local directory (created on the first write)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().absolute()
        if self.root.exists() and not self.root.is_dir():
            raise StorageError(f"object store folder {self.root} exists but is not a directory")

    @classmethod
    def from_uri(cls, uri: str, *, base_dir: Path) -> LocalObjectStore:
        path = local_path(uri, base_dir)
        if path is None:
            raise StorageError(f"{uri!r} is not a local path or file:// URI")
        return cls(path)

    def __repr__(self) -> str:
        return f"LocalObjectStore({str(self.root)!r})"

    @property
    def location(self) -> str:
        return str(self.root)

    def uri(self, key: str = "") -> str:
        validate_key(key, prefix=True)
        path = self.root.joinpath(*key.split("/")) if key.strip("/") else self.root
        return path.as_uri() + ("/" if key.endswith("/") else "")

    # -- helpers ---------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    @contextlib.contextmanager
    def _os_errors(self, action: str, key: str) -> Iterator[None]:
        # Turn filesystem failures into one clear storage error (no traceback in the CLI).
        try:
            yield
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            if action == "read":
                raise ObjectNotFoundError(key, self.location) from exc
            raise StorageError(f"cannot {action} {key!r} in {self.location}: {exc}") from exc
        except OSError as exc:
            raise StorageError(f"cannot {action} {key!r} in {self.location}: {exc}") from exc

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # A fresh descriptor per acquisition: flock excludes other descriptors, so threads
        # of one process exclude each other as processes do. Closing it releases the lock.
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _publish(self, tmp: Path, target: Path, token: str | None, *, absent: bool) -> bool:
        """Rename ``tmp`` over ``target`` under the lock, if the condition holds."""
        try:
            with self._locked():
                if absent and (target.exists() or target.is_symlink()):
                    return False
                if token is not None:
                    try:
                        current = target.read_bytes()
                    except FileNotFoundError:
                        return False
                    if content_token(current) != token:
                        return False
                os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)  # gone already after a successful replace
        fsync_dir(target.parent)
        return True

    def _has_object(self, directory: Path) -> bool:
        for _, dirnames, files in os.walk(directory):
            dirnames[:] = [d for d in dirnames if not _hidden(d)]
            if any(not _hidden(f) for f in files):
                return True
        return False

    # -- ObjectStore -----------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes) -> None:
        target = self._path(key)
        with self._os_errors("write", key):
            self._publish(write_temp(target.parent, (bytes(data),)), target, None, absent=False)

    def put_file(self, key: str, local_path: Path) -> None:
        target = self._path(key)
        with self._os_errors("write", key):
            tmp = write_temp(target.parent, _read_chunks(Path(local_path)))
            self._publish(tmp, target, None, absent=False)

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        with self._os_errors("read", key):
            return path.read_bytes()

    def get_versioned(self, key: str) -> tuple[bytes, str]:
        # One read gives both: the token always describes exactly the bytes returned.
        data = self.get_bytes(key)
        return data, content_token(data)

    def put_if_match(self, key: str, data: bytes, token: str) -> bool:
        target = self._path(key)
        with self._os_errors("write", key):
            tmp = write_temp(target.parent, (bytes(data),))
            return self._publish(tmp, target, str(token), absent=False)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        target = self._path(key)
        with self._os_errors("write", key):
            return self._publish(
                write_temp(target.parent, (bytes(data),)), target, None, absent=True
            )

    def download(self, key: str, local_path: Path) -> None:
        source = self._path(key)
        local_path = Path(local_path)
        if not source.is_file():
            raise ObjectNotFoundError(key, self.location)
        try:
            atomic_write_chunks(local_path, _read_chunks(source))
        except OSError as exc:
            raise StorageError(f"cannot download {key!r} to {local_path}: {exc}") from exc

    def open_reader(self, key: str) -> BinaryIO:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFoundError(key, self.location)
        with self._os_errors("read", key):
            # Objects are replaced by rename, never rewritten: an open reader keeps the
            # version it opened.
            return open(path, "rb")  # the caller closes it

    def list(self, prefix: str = "", *, recursive: bool = True) -> list[str]:
        validate_key(prefix, prefix=True)
        # Split "a/b/na" into the directory "a/b" to scan and the name stem "na" to match,
        # so a prefix that is not a whole segment behaves as in S3.
        dir_part, _, stem = prefix.rpartition("/")
        base = self.root.joinpath(*dir_part.split("/")) if dir_part else self.root
        key_base = f"{dir_part}/" if dir_part else ""
        if not base.is_dir():
            return []
        found: list[str] = []
        with self._os_errors("list", prefix):
            for entry in os.scandir(base):
                if not entry.name.startswith(stem) or _hidden(entry.name):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    sub = Path(entry.path)
                    if not recursive:
                        # Like S3, a "directory" exists only while some object is under it.
                        if self._has_object(sub):
                            found.append(f"{key_base}{entry.name}/")
                        continue
                    for dirpath, dirnames, files in os.walk(sub):
                        dirnames[:] = [d for d in dirnames if not _hidden(d)]
                        rel = Path(dirpath).relative_to(self.root).as_posix()
                        found.extend(f"{rel}/{f}" for f in files if not _hidden(f))
                elif entry.is_file(follow_symlinks=False):
                    found.append(f"{key_base}{entry.name}")
        return sorted(found)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        if not os.path.lexists(path):
            return  # without taking the lock, which would create a missing root
        with self._os_errors("delete", key), self._locked():
            try:
                path.unlink()
            except FileNotFoundError:
                return
            # Prune emptied parent directories so listings match S3, where prefixes
            # disappear with their last object. A concurrent writer may refill one: ignore.
            parent = path.parent
            while parent != self.root:
                try:
                    parent.rmdir()
                except OSError:
                    break
                parent = parent.parent
