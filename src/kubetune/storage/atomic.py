"""The one atomic file write: readers see the old file or the whole new one, never a part.

Every file a user or a controller reads (stored objects, the HTML report, the run
summary, a trial's result) is written through here: a temporary file in the target's
folder, fsync, ``os.replace`` over the target, then fsync of the folder so the rename
itself survives a crash. A crash leaves at most a temporary file whose name starts with
:data:`TEMP_PREFIX`, which object-store listings ignore.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "TEMP_PREFIX",
    "atomic_write_bytes",
    "atomic_write_chunks",
    "atomic_write_text",
    "fsync_dir",
    "write_temp",
]

TEMP_PREFIX = ".kt-tmp-"


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable; some filesystems refuse to open folders."""
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


def write_temp(directory: Path, chunks: Iterable[bytes]) -> Path:
    """Write ``chunks`` to a new temporary file in ``directory`` (created if needed), fsync
    it and return its path; on failure nothing is left behind."""
    tmp = directory / f"{TEMP_PREFIX}{uuid.uuid4().hex}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        try:
            fh = open(tmp, "xb")  # noqa: SIM115 - closed by the with below
        except FileNotFoundError:
            # Someone pruned the folder we just made (an object store's delete): again.
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


def atomic_write_chunks(path: Path, chunks: Iterable[bytes]) -> None:
    """Replace ``path`` with the concatenated ``chunks`` atomically (parents are created).

    Raises OSError like ``open`` would; the target is then unchanged.
    """
    path = Path(path)
    tmp = write_temp(path.parent, chunks)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (parents are created)."""
    atomic_write_chunks(path, (bytes(data),))


def atomic_write_text(path: Path, text: str, encoding: str = "utf-8") -> None:
    """Replace ``path`` with ``text`` atomically (parents are created)."""
    atomic_write_chunks(path, (text.encode(encoding),))
