"""What differs between two versions of a model (``kubetune models diff NAME A B``).

Compared from the manifests alone (nothing is downloaded): params, metrics, the data
fingerprint, the trainer and every file's sha256.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubetune.repository.manifest import Manifest
from kubetune.repository.repository import ModelRepository

__all__ = ["VersionDiff", "diff_versions"]

_MISSING = object()


def _changed(a: dict[str, Any], b: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Keys whose values differ, as (value in A, value in B); a missing side is None."""
    changed = {}
    for key in sorted(set(a) | set(b)):
        left, right = a.get(key, _MISSING), b.get(key, _MISSING)
        if left != right:
            changed[key] = (
                None if left is _MISSING else left,
                None if right is _MISSING else right,
            )
    return changed


@dataclass(frozen=True)
class VersionDiff:
    """The differences between versions ``a`` and ``b`` of one model (A is the base)."""

    name: str
    a: Manifest
    b: Manifest
    a_ref: str
    b_ref: str
    params: dict[str, tuple[Any, Any]]
    metrics: dict[str, tuple[Any, Any]]
    files_added: list[str]  # in B only
    files_removed: list[str]  # in A only
    files_changed: list[str]  # in both, different content
    files_same: int

    @property
    def same_data(self) -> bool:
        return self.a.data_fingerprint == self.b.data_fingerprint

    @property
    def identical(self) -> bool:
        """Same params, metrics, data, trainer and files."""
        return not (
            self.params
            or self.metrics
            or self.files_added
            or self.files_removed
            or self.files_changed
            or not self.same_data
            or self.a.trainer != self.b.trainer
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "a": {"ref": self.a_ref, "version": self.a.version},
            "b": {"ref": self.b_ref, "version": self.b.version},
            "identical": self.identical,
            "params": {k: {"a": x, "b": y} for k, (x, y) in self.params.items()},
            "metrics": {k: {"a": x, "b": y} for k, (x, y) in self.metrics.items()},
            "data_fingerprint": {
                "a": self.a.data_fingerprint,
                "b": self.b.data_fingerprint,
                "same": self.same_data,
            },
            "trainer": {"a": self.a.trainer, "b": self.b.trainer},
            "files": {
                "added": self.files_added,
                "removed": self.files_removed,
                "changed": self.files_changed,
                "same": self.files_same,
            },
        }


def diff_versions(repo: ModelRepository, name: str, a: int | str, b: int | str) -> VersionDiff:
    """Compare versions ``a`` and ``b`` (version numbers, aliases or ``latest``) of ``name``."""
    left, right = repo.get(name, a), repo.get(name, b)
    files_a = {f.path: (f.sha256, f.size) for f in left.files}
    files_b = {f.path: (f.sha256, f.size) for f in right.files}
    common = sorted(set(files_a) & set(files_b))
    changed = [p for p in common if files_a[p] != files_b[p]]
    return VersionDiff(
        name=name,
        a=left,
        b=right,
        a_ref=str(a),
        b_ref=str(b),
        params=_changed(left.params, right.params),
        metrics=_changed(left.metrics, right.metrics),
        files_added=sorted(set(files_b) - set(files_a)),
        files_removed=sorted(set(files_a) - set(files_b)),
        files_changed=changed,
        files_same=len(common) - len(changed),
    )
