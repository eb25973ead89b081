"""The one scheme registry: which :class:`ObjectStore` serves a URI.

Entries are ``"module:Class"`` strings imported on first use, so an optional client
(``minio`` for ``s3://``) is imported only by a run that opens such a store. A plain path
and ``file://`` are the local store. A new backend is one :func:`register_store` call (or
one line in ``_STORES``) and a class with a ``from_uri`` classmethod.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from kubetune.errors import StorageError
from kubetune.storage.base import ObjectStore
from kubetune.storage.uri import split_object_uri, uri_scheme

__all__ = [
    "UnsupportedSchemeError",
    "open_object",
    "open_store",
    "register_store",
    "store_schemes",
]

_STORES: dict[str, str] = {
    "file": "kubetune.storage.local:LocalObjectStore",
    "s3": "kubetune.storage.s3:S3ObjectStore",  # needs the minio client (kubetune[s3])
}
# Schemes users can already write, whose store is not there yet: scheme -> what brings it.
_PLANNED: dict[str, str] = {}


class UnsupportedSchemeError(StorageError):
    """No store serves this URI's scheme (yet: ``planned`` says what brings it)."""

    def __init__(self, uri: str, scheme: str, planned: str | None) -> None:
        if planned is not None:
            message = (
                f"{scheme}:// arrives with {planned}; use a directory or file:// URI (got {uri!r})"
            )
        else:
            known = ", ".join(f"{s}://" for s in store_schemes())
            message = f"unsupported storage URI {uri!r}: use a directory or {known}"
        super().__init__(message)
        self.uri = uri
        self.scheme = scheme
        self.planned = planned


def register_store(scheme: str, target: str) -> None:
    """Serve ``scheme://`` URIs with the class at ``target`` (``"package.module:Class"``)."""
    module, sep, name = target.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"store target must look like 'package.module:Class', got {target!r}")
    _STORES[scheme.lower()] = target
    _PLANNED.pop(scheme.lower(), None)


def store_schemes() -> tuple[str, ...]:
    """Schemes with a store, plus those announced for a later release, sorted."""
    return tuple(sorted({*_STORES, *_PLANNED}))


def _store_class(uri: str, scheme: str) -> type[ObjectStore]:
    target = _STORES.get(scheme)
    if target is None:
        raise UnsupportedSchemeError(uri, scheme, _PLANNED.get(scheme))
    module_name, _, class_name = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise StorageError(
            f"cannot open {uri!r}: the {scheme}:// store is unavailable ({exc})"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, ObjectStore)):
        raise StorageError(f"cannot open {uri!r}: {target} is not an ObjectStore")
    return cls


def open_store(location: str | os.PathLike[str], *, base_dir: Path | None = None) -> ObjectStore:
    """The store at a directory (relative to ``base_dir``, default the current directory),
    a ``file://`` URI or a URI of a registered scheme."""
    text = os.fspath(location).strip()
    if not text:
        raise StorageError(f"storage location is empty: {os.fspath(location)!r}")
    scheme = uri_scheme(text) or "file"
    return _store_class(text, scheme).from_uri(text, base_dir=base_dir or Path.cwd())


def open_object(
    location: str | os.PathLike[str], *, base_dir: Path | None = None
) -> tuple[ObjectStore, str]:
    """The store holding the single object ``location`` names, and its key there."""
    parent, key = split_object_uri(os.fspath(location))
    return open_store(parent, base_dir=base_dir), key
