"""Storage URIs: the one parser (``kubetune.core.paths``) and the few helpers adapters need.

``uri_scheme``/``local_path``/``file_uri_path`` are re-exported from core, where the parser
lives so that the spec can use it; this module adds what only adapters need.
"""

from __future__ import annotations

import os
from pathlib import Path

from kubetune.core.paths import file_uri_path, local_path, uri_scheme
from kubetune.errors import StorageError

__all__ = [
    "file_uri_path",
    "local_path",
    "path_to_uri",
    "split_object_uri",
    "to_uri",
    "uri_scheme",
]


def path_to_uri(path: Path) -> str:
    """``/abs/p q`` -> ``file:///abs/p%20q`` (a relative path is made absolute first)."""
    return Path(path).absolute().as_uri()


def to_uri(location: str | os.PathLike[str], base_dir: Path) -> str:
    """The full URI of a location: a plain path becomes ``file:///abs``, a URI stays."""
    path = local_path(location, base_dir)
    return path_to_uri(path) if path is not None else os.fspath(location)


def split_object_uri(location: str) -> tuple[str, str]:
    """``s3://bucket/dir/data.csv`` -> (``s3://bucket/dir``, ``data.csv``): the store that
    holds one object and its key there."""
    head, sep, name = location.rstrip().rpartition("/")
    if not sep or not name or head.endswith(("/", ":")):
        raise StorageError(f"{location!r} does not name an object (like s3://bucket/dir/file)")
    return head, name
