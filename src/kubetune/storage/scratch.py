"""Scratch folders that a killed process cannot leave behind for good.

A push stages a whole model (hundreds of MB) in a temporary folder; SIGKILL skips the
cleanup. Each folder's name carries its process id, and every new one first removes the
folders of processes that are gone.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["pid_alive", "scratch_dir", "sweep_scratch"]


@contextmanager
def scratch_dir(purpose: str) -> Iterator[Path]:
    """A fresh temporary folder ``kubetune-<purpose>-<pid>-*``, removed on exit."""
    sweep_scratch(purpose)
    with tempfile.TemporaryDirectory(prefix=f"kubetune-{purpose}-{os.getpid()}-") as tmp:
        yield Path(tmp)


def sweep_scratch(purpose: str, root: Path | None = None) -> list[Path]:
    """Remove ``kubetune-<purpose>-<pid>-*`` folders whose process is no longer alive."""
    root = Path(root or tempfile.gettempdir())
    pattern = re.compile(rf"kubetune-{re.escape(purpose)}-(\d+)-")
    removed: list[Path] = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for entry in entries:
        match = pattern.match(entry.name)
        if match and entry.is_dir(follow_symlinks=False) and not pid_alive(int(match.group(1))):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
    return removed


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True
