"""The model repository: immutable, verified model versions and movable aliases.

``open_repository`` turns what a user typed (a directory, ``file:///abs/path``, later
``s3://bucket/prefix``) into a :class:`ModelRepository` over an :class:`ObjectStore` from
the storage registry (``kubetune.storage``).
"""

from __future__ import annotations

from pathlib import Path

from kubetune.errors import RepositoryError
from kubetune.repository.manifest import Manifest, ManifestFile
from kubetune.repository.repository import PRODUCTION, ModelRepository
from kubetune.storage import (
    LocalObjectStore,
    ObjectNotFoundError,
    ObjectStore,
    UnsupportedSchemeError,
    open_store,
    uri_scheme,
)

__all__ = [
    "PRODUCTION",
    "LocalObjectStore",
    "Manifest",
    "ManifestFile",
    "ModelRepository",
    "ObjectNotFoundError",
    "ObjectStore",
    "open_repository",
]


def open_repository(uri_or_path: str | Path, *, base_dir: Path | None = None) -> ModelRepository:
    """Open the model repository at a directory (relative to ``base_dir`` or the current
    directory), a ``file://`` URI or an ``s3://bucket/prefix`` URI."""
    if isinstance(uri_or_path, Path):
        uri_or_path = str(uri_or_path)
    if not isinstance(uri_or_path, str) or not uri_or_path.strip():
        raise RepositoryError(f"model repository location is empty: {uri_or_path!r}")
    text = uri_or_path.strip()
    try:
        store = open_store(text, base_dir=base_dir)
    except UnsupportedSchemeError as exc:
        if exc.planned is not None:
            raise RepositoryError(
                f"{exc.scheme}:// model repositories arrive with {exc.planned};"
                " use a directory or file:// URI"
            ) from None
        raise RepositoryError(
            f"unsupported model repository URI {text!r}: use a directory, "
            "file:///abs/path or s3://bucket/prefix"
        ) from None
    # A plain path is shown as the folder it resolved to; a URI as the user wrote it.
    return ModelRepository(store, text if uri_scheme(text) else store.location)
