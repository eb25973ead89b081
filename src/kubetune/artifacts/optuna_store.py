""":class:`ObjectArtifactStore`: optuna's artifact-store protocol over any kubetune
:class:`~kubetune.storage.ObjectStore` (a local folder, ``s3://bucket/prefix``...).

optuna's ``upload_artifact`` names every artifact with a fresh UUID and records its
metadata (file name, MIME type) in the study storage; the store only keeps bytes under that
id. optuna-dashboard later asks the store for an id alone, so an id must be resolvable
without knowing its trial. Layout under the store's root::

    studies/<study>/trials/<number>/optuna/<artifact id>    content (a trial-scoped store)
    optuna-artifacts/<artifact id>                          content (the root store)
    artifact-ids/<artifact id>                              the content's key (written last)

The index entry is written after the content, so an id that resolves always has all of its
bytes; an id without an index entry is looked up under ``optuna-artifacts/`` (where an
unscoped store writes), then reported as :class:`optuna.artifacts.exceptions.ArtifactNotFound`.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

from optuna.artifacts.exceptions import ArtifactNotFound

from kubetune.errors import StorageError
from kubetune.storage.base import ObjectNotFoundError, ObjectStore, validate_key

__all__ = ["INDEX_PREFIX", "ROOT_PREFIX", "ObjectArtifactStore"]

INDEX_PREFIX = "artifact-ids/"
ROOT_PREFIX = "optuna-artifacts/"


class ObjectArtifactStore:
    """optuna ``ArtifactStore`` on an object store; ``scope`` is the key prefix new
    artifacts go under (``ROOT_PREFIX`` by default; :class:`~kubetune.artifacts.TrialArtifacts`
    gives one scoped to its trial's folder). Any scope reads every artifact of the store."""

    def __init__(self, store: ObjectStore, scope: str = ROOT_PREFIX) -> None:
        validate_key(scope, prefix=True)
        self.store = store
        self.scope = scope if scope.endswith("/") or not scope else scope + "/"

    def __repr__(self) -> str:
        return f"ObjectArtifactStore({self.store.uri(self.scope)!r})"

    @staticmethod
    def _check_id(artifact_id: str) -> str:
        # One key segment: optuna's ids are UUIDs; anything with a '/' or '..' is refused.
        if not isinstance(artifact_id, str) or "/" in artifact_id:
            raise ValueError(f"invalid artifact_id: {artifact_id!r}")
        try:
            validate_key(artifact_id)
        except StorageError as exc:
            raise ValueError(f"invalid artifact_id: {artifact_id!r}") from exc
        return artifact_id

    def key(self, artifact_id: str) -> str:
        """Where the content of ``artifact_id`` is (or would be) stored."""
        self._check_id(artifact_id)
        try:
            return self.store.get_bytes(INDEX_PREFIX + artifact_id).decode()
        except ObjectNotFoundError:
            return ROOT_PREFIX + artifact_id

    def open_reader(self, artifact_id: str) -> BinaryIO:
        key = self.key(artifact_id)
        try:
            return self.store.open_reader(key)
        except ObjectNotFoundError as exc:
            raise ArtifactNotFound(
                f"artifact {artifact_id} not found in {self.store.uri()}"
            ) from exc

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        key = self.scope + self._check_id(artifact_id)
        # Through a file on disk, so a large artifact streams (multipart on S3) instead of
        # sitting in memory.
        with tempfile.TemporaryDirectory(prefix="kubetune-artifact-") as tmp:
            path = Path(tmp) / "content"
            with open(path, "wb") as fh:
                shutil.copyfileobj(content_body, fh)
            self.store.put_file(key, path)
        if key != ROOT_PREFIX + artifact_id:
            self.store.put_bytes(INDEX_PREFIX + artifact_id, key.encode())

    def remove(self, artifact_id: str) -> None:
        key = self.key(artifact_id)
        if not self.store.exists(key):
            raise ArtifactNotFound(f"artifact {artifact_id} not found in {self.store.uri()}")
        # Index first: a reader never follows it to content that is already gone.
        self.store.delete(INDEX_PREFIX + artifact_id)
        self.store.delete(key)
