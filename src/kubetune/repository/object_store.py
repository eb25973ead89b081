"""A flat key/value store of files, the only thing the model repository needs from storage.

Keys are ``/``-separated relative names (``iris/versions/000003/model.safetensors``).
``list`` follows S3 semantics (a string prefix; ``recursive=False`` groups deeper keys into
``"sub/"`` prefixes like a ``/`` delimiter) so an S3/MinIO store is a direct translation.
"""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

from kubetune.errors import RepositoryError

__all__ = [
    "LocalObjectStore",
    "ObjectNotFoundError",
    "ObjectStore",
    "validate_key",
]

# Temporary files of atomic writes carry this prefix; listings never show them, and keys
# may not use it, so a half-written file can never be mistaken for a stored object.
_TMP_PREFIX = ".kt-tmp-"
_CHUNK = 1024 * 1024


class ObjectNotFoundError(RepositoryError):
    """The key does not exist in the store."""

    def __init__(self, key: str, where: str) -> None:
        super().__init__(f"{key!r} not found in {where}")
        self.key = key


def validate_key(key: str, *, prefix: bool = False) -> str:
    """Return ``key`` if it is a safe relative key, else raise :class:`RepositoryError`.

    With ``prefix=True`` the empty string and a trailing ``/`` are allowed.
    """
    if not isinstance(key, str):
        raise RepositoryError(f"object key must be a string, got {type(key).__name__}")
    if prefix and key == "":
        return key
    parts = key.split("/")
    if prefix and key.endswith("/"):
        parts = parts[:-1]
    problem = None
    if key.startswith("/"):
        problem = "must be relative"
    elif "\\" in key or "\x00" in key:
        problem = "contains a backslash or NUL"
    elif any(p in ("", ".", "..") for p in parts):
        problem = "has an empty, '.' or '..' segment"
    elif any(p.startswith(_TMP_PREFIX) for p in parts):
        problem = f"uses the reserved prefix {_TMP_PREFIX!r}"
    if problem:
        raise RepositoryError(f"invalid object key {key!r}: {problem}")
    return key


class ObjectStore(ABC):
    """Storage of immutable-ish blobs under string keys.

    Implementations must make every write atomic (a reader sees the old object, no object,
    or the whole new object) and must raise :class:`ObjectNotFoundError` for a missing key.
    """

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the store lives, for messages (a path or URI)."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, replacing any existing object."""

    @abstractmethod
    def put_file(self, key: str, local_path: Path) -> None:
        """Upload the local file ``local_path`` under ``key``, replacing any existing object."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """Return the object's content."""

    @abstractmethod
    def download(self, key: str, local_path: Path) -> None:
        """Write the object to ``local_path`` (parents are created)."""

    @abstractmethod
    def list(self, prefix: str = "", *, recursive: bool = True) -> list[str]:
        """Sorted keys starting with ``prefix``.

        With ``recursive=False`` only keys with no ``/`` after the prefix are returned, and
        deeper keys are folded into their next-level prefix ending in ``/`` (S3 delimiter).
        """

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error (as in S3)."""

    @abstractmethod
    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Store ``data`` under ``key`` only if no object exists there; return whether it did.

        This is the one compare-and-set the repository relies on (claiming a version number
        between concurrent pushers). S3 implements it with ``If-None-Match: *``.
        """


class LocalObjectStore(ObjectStore):
    """An :class:`ObjectStore` on a local directory (created on the first write)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().absolute()
        if self.root.exists() and not self.root.is_dir():
            raise RepositoryError(f"model repository {self.root} exists but is not a directory")

    def __repr__(self) -> str:
        return f"LocalObjectStore({str(self.root)!r})"

    @property
    def location(self) -> str:
        return str(self.root)

    # -- helpers ---------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    @contextlib.contextmanager
    def _os_errors(self, action: str, key: str) -> Iterator[None]:
        # Turn filesystem failures into one clear repository error (no traceback in the CLI).
        try:
            yield
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            if action in ("read", "download"):
                raise ObjectNotFoundError(key, self.location) from exc
            raise RepositoryError(f"cannot {action} {key!r} in {self.location}: {exc}") from exc
        except OSError as exc:
            raise RepositoryError(f"cannot {action} {key!r} in {self.location}: {exc}") from exc

    @staticmethod
    def _fsync_dir(directory: Path) -> None:
        # Makes the rename itself durable; some filesystems refuse to open directories.
        try:
            fd = os.open(directory, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    @staticmethod
    def _write_temp(directory: Path, chunks: Iterator[bytes]) -> Path:
        """Write ``chunks`` to a fresh temp file in ``directory``, fsync it, return its path."""
        tmp = directory / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            try:
                fh = open(tmp, "xb")  # noqa: SIM115 - closed by the with below
            except FileNotFoundError:
                # A concurrent delete() pruned the directory we just made: make it again.
                directory.mkdir(parents=True, exist_ok=True)
                fh = open(tmp, "xb")  # noqa: SIM115
            with fh:
                for chunk in chunks:
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    @classmethod
    def _atomic_write(cls, target: Path, chunks: Iterator[bytes]) -> None:
        # Temp file in the same directory + os.replace: readers see the old or the new file,
        # never a partial one, and a crash leaves only an ignored temp file behind.
        tmp = cls._write_temp(target.parent, chunks)
        try:
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        cls._fsync_dir(target.parent)

    @staticmethod
    def _read_chunks(path: Path) -> Iterator[bytes]:
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                yield chunk

    @staticmethod
    def _has_object(directory: Path) -> bool:
        for _, _, files in os.walk(directory):
            if any(not f.startswith(_TMP_PREFIX) for f in files):
                return True
        return False

    # -- ObjectStore -----------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes) -> None:
        with self._os_errors("write", key):
            self._atomic_write(self._path(key), iter([bytes(data)]))

    def put_file(self, key: str, local_path: Path) -> None:
        target = self._path(key)
        with self._os_errors("write", key):
            self._atomic_write(target, self._read_chunks(Path(local_path)))

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        with self._os_errors("read", key):
            return path.read_bytes()

    def download(self, key: str, local_path: Path) -> None:
        source = self._path(key)
        local_path = Path(local_path)
        if not source.is_file():
            raise ObjectNotFoundError(key, self.location)
        try:
            self._atomic_write(local_path, self._read_chunks(source))
        except OSError as exc:
            raise RepositoryError(f"cannot download {key!r} to {local_path}: {exc}") from exc

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
                if not entry.name.startswith(stem) or entry.name.startswith(_TMP_PREFIX):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    sub = Path(entry.path)
                    if not recursive:
                        # Like S3, a "directory" exists only while some object is under it.
                        if self._has_object(sub):
                            found.append(f"{key_base}{entry.name}/")
                        continue
                    for dirpath, dirnames, files in os.walk(sub):
                        dirnames[:] = [d for d in dirnames if not d.startswith(_TMP_PREFIX)]
                        rel = Path(dirpath).relative_to(self.root).as_posix()
                        found.extend(f"{rel}/{f}" for f in files if not f.startswith(_TMP_PREFIX))
                elif entry.is_file(follow_symlinks=False):
                    found.append(f"{key_base}{entry.name}")
        return sorted(found)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        with self._os_errors("delete", key):
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

    def create_exclusive(self, key: str, data: bytes) -> bool:
        target = self._path(key)
        with self._os_errors("write", key):
            tmp = self._write_temp(target.parent, iter([bytes(data)]))
            try:
                # link() fails if the target exists and publishes the complete file in one
                # step, so a competing reader never sees an empty marker.
                os.link(tmp, target)
            except FileExistsError:
                return False
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                    raise
                return self._create_exclusive_no_links(target, data)
            finally:
                tmp.unlink(missing_ok=True)
            self._fsync_dir(target.parent)
            return True

    @staticmethod
    def _create_exclusive_no_links(target: Path, data: bytes) -> bool:
        # For filesystems without hard links: O_EXCL is still atomic for the claim itself.
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        return True
