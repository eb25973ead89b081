"""The manifest of one model version: what was stored, how to verify it, where it came from."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubetune
from kubetune.errors import RepositoryError

__all__ = [
    "MANIFEST_FORMAT",
    "MANIFEST_NAME",
    "Manifest",
    "ManifestFile",
    "file_digest",
    "sha256_bytes",
    "sha256_file",
    "utc_now",
]

MANIFEST_NAME = "manifest.json"
# Bumped on an incompatible change so an old kubetune refuses a manifest it would misread.
MANIFEST_FORMAT = 1
_CHUNK = 1024 * 1024


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def file_digest(path: Path) -> tuple[str, int]:
    """Hex sha256 and size of a file, read once in chunks (model files can be large)."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file."""
    return file_digest(path)[0]


def utc_now() -> str:
    """Current time as an ISO 8601 UTC string, e.g. ``2025-01-31T12:00:00Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _plain(value: Any) -> Any:
    # numpy scalars and arrays (params often come from numpy) become plain Python values,
    # without importing numpy here.
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


def _finite_or_none(value: Any) -> Any:
    # Strict JSON has no NaN/inf; an undefined secondary metric (e.g. AUC on a one-class
    # test set) must not make a push fail at the end of a long run, so it is stored as null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return value


def _to_json_value(field_name: str, value: Any) -> Any:
    """Round-trip ``value`` through JSON so the manifest holds exactly what a reader gets."""
    try:
        return _finite_or_none(json.loads(json.dumps(value, default=_plain)))
    except (TypeError, ValueError) as exc:
        raise RepositoryError(f"manifest field {field_name!r} cannot be stored: {exc}") from exc


@dataclass(frozen=True)
class ManifestFile:
    """One stored file: its path relative to the version, sha256 and size in bytes."""

    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """Everything known about one immutable model version."""

    name: str
    version: int
    files: list[ManifestFile]
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    data_fingerprint: str = ""
    study: str = ""
    trainer: str = ""
    kubetune_version: str = kubetune.__version__
    created_at: str = field(default_factory=utc_now)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Normalize once so a manifest compares equal to its own JSON round trip.
        for name in ("name", "data_fingerprint", "study", "trainer", "kubetune_version"):
            value = getattr(self, name)
            if value is None:
                object.__setattr__(self, name, "")
            elif not isinstance(value, str):
                raise RepositoryError(
                    f"manifest field {name!r} must be a string, got {type(value).__name__}"
                )
        for name in ("params", "metrics", "extra"):
            value = getattr(self, name)
            if not isinstance(value, dict):
                raise RepositoryError(
                    f"manifest field {name!r} must be a mapping, got {type(value).__name__}"
                )
            object.__setattr__(self, name, _to_json_value(name, value))
        object.__setattr__(self, "files", sorted(self.files, key=lambda f: f.path))

    @property
    def total_size(self) -> int:
        """Sum of the stored files' sizes in bytes."""
        return sum(f.size for f in self.files)

    def file(self, path: str) -> ManifestFile:
        """The entry for ``path``; RepositoryError if the version has no such file."""
        for entry in self.files:
            if entry.path == path:
                return entry
        raise RepositoryError(
            f"model {self.name!r} version {self.version} has no file {path!r}; "
            f"files: {', '.join(f.path for f in self.files) or 'none'}"
        )

    def to_dict(self) -> dict[str, Any]:
        data = {"format": MANIFEST_FORMAT}
        data.update(asdict(self))
        return data

    def to_json(self) -> str:
        # Strict JSON (no NaN) so any tool can read it; __post_init__ already replaced them.
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "manifest") -> Manifest:
        """Build a manifest from parsed JSON; RepositoryError naming ``source`` if malformed."""

        def bad(problem: str) -> RepositoryError:
            return RepositoryError(f"malformed manifest {source}: {problem}")

        if not isinstance(data, dict):
            raise bad("not a JSON object")
        fmt = data.get("format", MANIFEST_FORMAT)
        if not isinstance(fmt, int) or fmt > MANIFEST_FORMAT:
            raise bad(
                f"format {fmt!r} is newer than this kubetune understands "
                f"({MANIFEST_FORMAT}); upgrade kubetune"
            )
        try:
            files = [
                ManifestFile(path=str(f["path"]), sha256=str(f["sha256"]), size=int(f["size"]))
                for f in data["files"]
            ]
            version = data["version"]
            if not isinstance(version, int) or isinstance(version, bool):
                raise bad(f"version {version!r} is not an integer")
            return cls(
                name=str(data["name"]),
                version=version,
                files=files,
                params=data.get("params", {}),
                metrics=data.get("metrics", {}),
                data_fingerprint=str(data.get("data_fingerprint", "")),
                study=str(data.get("study", "")),
                trainer=str(data.get("trainer", "")),
                kubetune_version=str(data.get("kubetune_version", "")),
                created_at=str(data.get("created_at", "")),
                extra=data.get("extra", {}),
            )
        except KeyError as exc:
            raise bad(f"missing key {exc.args[0]!r}") from exc
        except (TypeError, ValueError, RepositoryError) as exc:
            # RepositoryError: a field the constructor refuses; say which manifest it is in
            raise bad(str(exc)) from exc

    @classmethod
    def from_json(cls, text: str | bytes, *, source: str = "manifest") -> Manifest:
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RepositoryError(f"malformed manifest {source}: not valid JSON ({exc})") from exc
        except RecursionError:
            raise RepositoryError(f"malformed manifest {source}: JSON nested too deeply") from None
        return cls.from_dict(data, source=source)
