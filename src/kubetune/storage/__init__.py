"""One storage layer for every location kubetune reads or writes.

- :mod:`~kubetune.storage.base`: the :class:`ObjectStore` contract (with compare-and-swap);
- :mod:`~kubetune.storage.local`: :class:`LocalObjectStore`, a local directory;
- :mod:`~kubetune.storage.uri`: paths and URIs (the parser itself is ``kubetune.core.paths``);
- :mod:`~kubetune.storage.registry`: scheme -> store, :func:`open_store`;
- :mod:`~kubetune.storage.atomic`: the one atomic file write.

Backends prove they keep the contract with ``kubetune.testing.storage.ObjectStoreConformance``.
"""

from __future__ import annotations

from kubetune.errors import StorageError
from kubetune.storage.atomic import atomic_write_bytes, atomic_write_text
from kubetune.storage.base import ObjectNotFoundError, ObjectStore, validate_key
from kubetune.storage.local import LocalObjectStore
from kubetune.storage.registry import (
    UnsupportedSchemeError,
    open_object,
    open_store,
    register_store,
    store_schemes,
)
from kubetune.storage.uri import local_path, path_to_uri, to_uri, uri_scheme

__all__ = [
    "LocalObjectStore",
    "ObjectNotFoundError",
    "ObjectStore",
    "StorageError",
    "UnsupportedSchemeError",
    "atomic_write_bytes",
    "atomic_write_text",
    "local_path",
    "open_object",
    "open_store",
    "path_to_uri",
    "register_store",
    "store_schemes",
    "to_uri",
    "uri_scheme",
    "validate_key",
]
