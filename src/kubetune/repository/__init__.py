"""The model repository: immutable, verified model versions and movable aliases.

``open_repository`` turns what a user typed (a directory, ``file:///abs/path``, later
``s3://bucket/prefix``) into a :class:`ModelRepository` over an :class:`ObjectStore`.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from kubetune.errors import RepositoryError
from kubetune.repository.manifest import Manifest, ManifestFile
from kubetune.repository.object_store import LocalObjectStore, ObjectNotFoundError, ObjectStore
from kubetune.repository.repository import ModelRepository

__all__ = [
    "LocalObjectStore",
    "Manifest",
    "ManifestFile",
    "ModelRepository",
    "ObjectNotFoundError",
    "ObjectStore",
    "open_repository",
]

# "scheme://..." plus the short "file:/abs" form; anything else is a plain path.
_SCHEME_RE = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*)://|(file):/", re.IGNORECASE)


def _open_store(uri_or_path: str, base_dir: Path | None) -> tuple[ObjectStore, str]:
    """Pick the store for a URI scheme; returns it and the URI to show in messages."""
    match = _SCHEME_RE.match(uri_or_path)
    scheme = (match.group(1) or match.group(2)).lower() if match else ""
    if scheme == "":
        path = Path(uri_or_path).expanduser()
        if not path.is_absolute():
            path = (base_dir if base_dir is not None else Path.cwd()) / path
        store = LocalObjectStore(path)
        return store, store.location
    if scheme == "file":
        parts = urlsplit(uri_or_path)
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise RepositoryError(
                f"invalid model repository URI {uri_or_path!r}: a file URI needs an absolute "
                "path, e.g. file:///srv/models (or use a plain directory path)"
            )
        return LocalObjectStore(Path(unquote(parts.path))), uri_or_path
    if scheme == "s3":
        raise RepositoryError(
            "s3:// model repositories arrive with the S3 support; use a directory or file:// URI"
        )
    raise RepositoryError(
        f"unsupported model repository URI {uri_or_path!r}: use a directory, "
        "file:///abs/path or s3://bucket/prefix"
    )


def open_repository(uri_or_path: str | Path, *, base_dir: Path | None = None) -> ModelRepository:
    """Open the model repository at a directory (relative to ``base_dir`` or the current
    directory), a ``file://`` URI or an ``s3://bucket/prefix`` URI."""
    if isinstance(uri_or_path, Path):
        uri_or_path = str(uri_or_path)
    if not isinstance(uri_or_path, str) or not uri_or_path.strip():
        raise RepositoryError(f"model repository location is empty: {uri_or_path!r}")
    store, uri = _open_store(uri_or_path.strip(), base_dir)
    return ModelRepository(store, uri)
