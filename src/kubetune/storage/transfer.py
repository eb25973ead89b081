"""Streaming an object to a local file while hashing it (model files, checkpoints)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from kubetune.storage.atomic import atomic_write_chunks
from kubetune.storage.base import ObjectStore

__all__ = ["download_hashed"]

_CHUNK = 1024 * 1024


def download_hashed(store: ObjectStore, key: str, local_path: Path) -> tuple[str, int]:
    """Stream ``key`` to ``local_path`` (atomically) and return its sha256 and size.

    The hash is computed while the bytes stream to disk, so a large file is read once and
    never held in memory; the caller compares it with what it expected.
    """
    hasher = hashlib.sha256()
    size = 0

    def chunks() -> Iterator[bytes]:
        nonlocal size
        with store.open_reader(key) as reader:
            while chunk := reader.read(_CHUNK):
                hasher.update(chunk)
                size += len(chunk)
                yield chunk

    atomic_write_chunks(Path(local_path), chunks())
    return hasher.hexdigest(), size
