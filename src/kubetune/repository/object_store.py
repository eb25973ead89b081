"""Moved to :mod:`kubetune.storage`; these names stay importable from here."""

from __future__ import annotations

from kubetune.storage.base import ObjectNotFoundError, ObjectStore, validate_key
from kubetune.storage.local import LocalObjectStore

__all__ = ["LocalObjectStore", "ObjectNotFoundError", "ObjectStore", "validate_key"]
