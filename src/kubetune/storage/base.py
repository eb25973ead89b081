"""The object-store contract: a flat key/value store of files, with compare-and-swap.

Keys are ``/``-separated relative names (``iris/versions/000003/model.safetensors``).
``list`` follows S3 semantics (a string prefix; ``recursive=False`` groups deeper keys into
``"sub/"`` prefixes like a ``/`` delimiter) so an S3/MinIO store is a direct translation.

Compare-and-swap: :meth:`ObjectStore.get_versioned` returns an object with a *version
token*; :meth:`ObjectStore.put_if_match` replaces it only while the token still matches,
and :meth:`ObjectStore.put_if_absent` creates a key only if nobody did. Tokens are opaque
strings: compare them only through these calls (the local store uses the content's
sha256, S3 its ETag).
"""

from __future__ import annotations

import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import BinaryIO

from kubetune.errors import StorageError
from kubetune.storage.atomic import TEMP_PREFIX

__all__ = [
    "RESERVED_PREFIXES",
    "ObjectNotFoundError",
    "ObjectStore",
    "validate_key",
]

# Names a store keeps for itself (temporary files of atomic writes); listings never show
# them and keys may not use them, so a half-written file is never mistaken for an object.
RESERVED_PREFIXES = (TEMP_PREFIX,)


class ObjectNotFoundError(StorageError):
    """The key does not exist in the store."""

    def __init__(self, key: str, where: str) -> None:
        super().__init__(f"{key!r} not found in {where}")
        self.key = key


def validate_key(key: str, *, prefix: bool = False) -> str:
    """Return ``key`` if it is a safe relative key, else raise :class:`StorageError`.

    With ``prefix=True`` the empty string and a trailing ``/`` are allowed.
    """
    if not isinstance(key, str):
        raise StorageError(f"object key must be a string, got {type(key).__name__}")
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
    elif any(p.startswith(RESERVED_PREFIXES) for p in parts):
        problem = f"uses a reserved prefix ({', '.join(map(repr, RESERVED_PREFIXES))})"
    if problem:
        raise StorageError(f"invalid object key {key!r}: {problem}")
    return key


class ObjectStore(ABC):
    """Blobs under string keys.

    Every write is atomic (a reader sees the old object, no object, or the whole new one);
    a missing key raises :class:`ObjectNotFoundError`; every other failure raises
    :class:`~kubetune.errors.StorageError` naming the key and the store.
    """

    @classmethod
    def from_uri(cls, uri: str, *, base_dir: Path) -> ObjectStore:
        """The store at ``uri`` (the registry's constructor; see ``kubetune.storage``)."""
        raise StorageError(f"{cls.__name__} cannot be opened from a URI ({uri})")

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the store lives, for messages (a path or URI)."""

    @abstractmethod
    def uri(self, key: str = "") -> str:
        """The full URI of ``key`` (or of the store itself for ``""``), e.g.
        ``file:///srv/models/iris/aliases/production.json``."""

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
    def get_versioned(self, key: str) -> tuple[bytes, str]:
        """Return the object's content and its version token (for :meth:`put_if_match`)."""

    @abstractmethod
    def put_if_match(self, key: str, data: bytes, token: str) -> bool:
        """Replace the object under ``key`` with ``data`` only if its version token is still
        ``token``; return whether it did. False when another writer changed or deleted it
        since it was read: read it again, recompute, retry. S3: ``If-Match: <etag>``."""

    @abstractmethod
    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Store ``data`` under ``key`` only if no object exists there; return whether it did.

        Claiming a version number between concurrent pushers and creating an alias rely on
        it. S3: ``If-None-Match: *``.
        """

    @abstractmethod
    def download(self, key: str, local_path: Path) -> None:
        """Write the object to ``local_path`` atomically (parents are created)."""

    def open_reader(self, key: str) -> BinaryIO:
        """A binary file object that streams the object (use it in ``with``, or close it).

        The default downloads to an anonymous temporary file first; backends override it
        to stream straight from where the object lives. A missing key raises
        :class:`ObjectNotFoundError` here, not on the first read.
        """
        with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX) as tmp:
            path = Path(tmp) / "object"
            self.download(key, path)
            # Opened before the folder goes: the data lives until the reader is closed.
            return open(path, "rb")  # the caller closes it

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

    def create_exclusive(self, key: str, data: bytes) -> bool:
        """The former name of :meth:`put_if_absent`, kept for existing callers."""
        return self.put_if_absent(key, data)
