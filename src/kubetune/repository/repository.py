"""Immutable model versions and movable aliases on top of an :class:`ObjectStore`.

Layout (keys)::

    <name>/versions/000017/<model files...>        uploaded first
    <name>/versions/000017/.kubetune-claim         created exclusively to own number 17
    <name>/versions/000017/manifest.json           written last: the version now exists
    <name>/aliases/<alias>.json                    {"version": 17, "previous": 12, ...}

A version is visible only once its manifest exists, so a crashed push leaves nothing a
reader would pick up; its leftovers keep their number, which is never reused. Aliases move
by compare-and-swap, so concurrent promotions never lose one another's update and
``previous`` is always the version the alias really pointed at before.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import socket
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubetune.errors import RepositoryError
from kubetune.repository.manifest import (
    MANIFEST_NAME,
    Manifest,
    ManifestFile,
    file_digest,
    sha256_bytes,
    utc_now,
)
from kubetune.storage.base import ObjectNotFoundError, ObjectStore, validate_key
from kubetune.storage.scratch import pid_alive
from kubetune.storage.transfer import download_hashed

__all__ = ["CLAIM_NAME", "PRODUCTION", "AliasMovedError", "ModelRepository", "validate_name"]

CLAIM_NAME = ".kubetune-claim"
# A push from another host still without its manifest after this long has died.
_ABANDONED_AFTER_S = 24 * 3600
# The alias the champion gate moves, and what a version reference defaults to.
PRODUCTION = "production"
_RESERVED_FILES = (MANIFEST_NAME, CLAIM_NAME)
# Starts with a letter or digit so a name is never mistaken for a CLI option.
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_VERSION_DIR_RE = re.compile(r"\d+")
_MAX_CLAIM_ATTEMPTS = 1000
_MAX_ALIAS_ATTEMPTS = 200


def validate_name(value: str, what: str = "model name") -> str:
    """Return ``value`` if it is a valid model/alias name, else raise RepositoryError."""
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise RepositoryError(
            f"invalid {what} {value!r}: use 1-63 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return value


def _validate_alias(alias: str) -> str:
    validate_name(alias, "alias")
    if alias == "latest" or alias.isdigit():
        raise RepositoryError(
            f"invalid alias {alias!r}: 'latest' and plain numbers already mean versions"
        )
    return alias


class _Any:
    """Marker for "no expectation" (None already means "no alias yet")."""


_ANY = _Any()


class AliasMovedError(RepositoryError):
    """An alias no longer points where the caller expected: decide again, then retry."""

    def __init__(self, name: str, alias: str, expected: int | None, found: int | None) -> None:
        super().__init__(
            f"alias {alias!r} of model {name!r} moved from {expected} to {found} meanwhile"
        )
        self.found = found


def _claim_abandoned(claim: Any) -> bool:
    if not isinstance(claim, dict):
        return False
    if claim.get("host") == socket.gethostname() and isinstance(claim.get("pid"), int):
        return not pid_alive(claim["pid"])
    try:
        claimed = datetime.fromisoformat(str(claim.get("claimed_at")))
    except ValueError:
        return False
    if claimed.tzinfo is None:
        claimed = claimed.replace(tzinfo=UTC)
    return (datetime.now(UTC) - claimed).total_seconds() > _ABANDONED_AFTER_S


def _version_dir(version: int) -> str:
    return f"{version:06d}"


def _collect_files(model_dir: Path) -> list[tuple[str, Path]]:
    """Every regular file under ``model_dir`` as (relative POSIX path, real path), sorted.

    Symlinks are followed only while they stay inside ``model_dir``: the repository stores
    what the trainer wrote, never a file from elsewhere on the machine.
    """
    if not model_dir.is_dir():
        raise RepositoryError(f"model directory {model_dir} does not exist or is not a directory")
    root = model_dir.resolve()
    found: list[tuple[str, Path]] = []

    def walk(directory: Path, rel: str, ancestors: frozenset[Path]) -> None:
        for entry in sorted(os.scandir(directory), key=lambda e: e.name):
            path = Path(entry.path)
            rel_path = f"{rel}{entry.name}"
            real = path.resolve()
            if entry.is_symlink() and not real.is_relative_to(root):
                raise RepositoryError(
                    f"{path} is a symlink to {real}, outside the model directory {model_dir}"
                )
            if real.is_dir():
                if real in ancestors:
                    raise RepositoryError(f"{path} is a symlink loop in {model_dir}")
                walk(path, f"{rel_path}/", ancestors | {real})
            elif real.is_file():
                found.append((rel_path, real))
            else:
                raise RepositoryError(f"{path} in {model_dir} is not a regular file")

    walk(root, "", frozenset({root}))
    if not found:
        raise RepositoryError(f"model directory {model_dir} holds no files to push")
    for rel_path, _ in found:
        if rel_path in _RESERVED_FILES:
            raise RepositoryError(
                f"{model_dir / rel_path}: {rel_path!r} is reserved by the model repository"
            )
        try:
            validate_key(rel_path)
        except RepositoryError as exc:
            raise RepositoryError(f"cannot store {model_dir / rel_path}: {exc}") from exc
    return found


class ModelRepository:
    """Versions and aliases of models, stored in ``store``; ``uri`` is used in messages."""

    def __init__(self, store: ObjectStore, uri: str) -> None:
        self.store = store
        self.uri = uri
        # Pushes of this object that failed and could not clean up (the server was down):
        # the next push sweeps them although their claiming process (this one) still lives.
        self._failed_pushes: set[tuple[str, int]] = set()

    def __repr__(self) -> str:
        return f"ModelRepository({self.uri!r})"

    # -- keys ------------------------------------------------------------------------------

    @staticmethod
    def _versions_prefix(name: str) -> str:
        return f"{name}/versions/"

    def _version_key(self, name: str, version: int, path: str) -> str:
        return f"{self._versions_prefix(name)}{_version_dir(version)}/{path}"

    @staticmethod
    def _alias_key(name: str, alias: str) -> str:
        return f"{name}/aliases/{alias}.json"

    # -- reading ---------------------------------------------------------------------------

    def _version_numbers(self, name: str) -> list[int]:
        """Every version number with something stored, complete or not, ascending."""
        numbers = []
        for entry in self.store.list(self._versions_prefix(name), recursive=False):
            last = entry.rstrip("/").rsplit("/", 1)[-1]
            if entry.endswith("/") and _VERSION_DIR_RE.fullmatch(last):
                numbers.append(int(last))
        return sorted(numbers)

    def _read_manifest(
        self, name: str, version: int, *, expect_sha256: str | None = None
    ) -> Manifest | None:
        key = self._version_key(name, version, MANIFEST_NAME)
        try:
            raw = self.store.get_bytes(key)
        except ObjectNotFoundError:
            return None
        if expect_sha256 is not None and sha256_bytes(raw) != expect_sha256:
            # The file hashes live in the manifest, so an edited manifest would vouch for
            # edited files: the alias remembers what the manifest was when it moved.
            raise RepositoryError(
                f"manifest {key} in {self.uri} changed after an alias pointed at it"
                f" (expected sha256 {expect_sha256}, got {sha256_bytes(raw)}); refusing it"
            )
        manifest = Manifest.from_json(raw, source=f"{key} in {self.uri}")
        if manifest.name != name or manifest.version != version:
            raise RepositoryError(
                f"malformed manifest {key} in {self.uri}: it describes "
                f"{manifest.name!r} version {manifest.version}"
            )
        return manifest

    def _has_any(self, name: str) -> bool:
        return bool(self.store.list(f"{name}/", recursive=False))

    def _unknown_model(self, name: str) -> RepositoryError:
        known = self.models()
        listing = ", ".join(known) if known else "none"
        return RepositoryError(f"no model {name!r} in {self.uri}; models: {listing}")

    def models(self) -> list[str]:
        """Names of models with at least one complete version, sorted.

        A model whose manifests are all malformed is still listed: one broken model must
        not hide the others (``versions`` says what is wrong with it).
        """
        names = []
        for entry in self.store.list("", recursive=False):
            name = entry.rstrip("/")
            if entry.endswith("/") and _NAME_RE.fullmatch(name) and self._has_manifest(name):
                names.append(name)
        return names

    def _has_manifest(self, name: str) -> bool:
        return any(
            self.store.exists(self._version_key(name, v, MANIFEST_NAME))
            for v in reversed(self._version_numbers(name))
        )

    def versions(self, name: str, *, skip_malformed: bool = False) -> list[Manifest]:
        """Complete versions of ``name``, oldest first. RepositoryError for an unknown model.

        With ``skip_malformed`` a version whose manifest cannot be read is left out (for
        listings) instead of failing the whole call.
        """
        validate_name(name)
        manifests = []
        for version in self._version_numbers(name):
            try:
                manifest = self._read_manifest(name, version)
            except RepositoryError:
                if not skip_malformed:
                    raise
                continue
            if manifest is not None:
                manifests.append(manifest)
        if not manifests and not self._has_any(name):
            raise self._unknown_model(name)
        return manifests

    def _latest(self, name: str) -> Manifest | None:
        for version in reversed(self._version_numbers(name)):
            manifest = self._read_manifest(name, version)
            if manifest is not None:
                return manifest
        return None

    def aliases(self, name: str) -> dict[str, int]:
        """Alias -> version for ``name`` (empty when it has none)."""
        validate_name(name)
        result = {}
        for key in self.store.list(f"{name}/aliases/", recursive=False):
            if key.endswith(".json") and not key.endswith("/"):
                alias = key.rsplit("/", 1)[-1].removesuffix(".json")
                result[alias] = self._read_alias(key)
        return dict(sorted(result.items()))

    def _read_alias(self, key: str) -> int:
        return self._parse_alias(key, self.store.get_bytes(key))

    def _parse_alias(self, key: str, raw: bytes) -> int:
        return self._parse_alias_record(key, raw)[0]

    def _parse_alias_record(self, key: str, raw: bytes) -> tuple[int, str | None]:
        """The version an alias points at and the manifest sha256 it recorded (if any)."""
        try:
            record = json.loads(raw)
            version = record["version"]
        # RecursionError: JSON nested too deeply for the parser (a hostile or broken object)
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise RepositoryError(f"malformed alias {key} in {self.uri}: {exc}") from exc
        if not isinstance(version, int) or isinstance(version, bool):
            raise RepositoryError(f"malformed alias {key} in {self.uri}: version {version!r}")
        digest = record.get("manifest_sha256")
        return version, digest if isinstance(digest, str) else None

    def resolve(self, name: str, ref: int | str = "latest") -> int:
        """The version number ``ref`` (a number, "latest" or an alias) stands for."""
        return self.get(name, ref).version

    def get(self, name: str, ref: int | str = "latest") -> Manifest:
        """The manifest of ``name`` at ``ref``: a version number, "latest" or an alias."""
        validate_name(name)
        if isinstance(ref, bool) or not isinstance(ref, (int, str)):
            raise RepositoryError(f"invalid version reference {ref!r} for model {name!r}")
        if isinstance(ref, str) and ref.isascii() and ref.isdigit():
            ref = int(ref)

        if ref == "latest":
            latest = self._latest(name)
            if latest is not None:
                return latest
            if not self._has_any(name):
                raise self._unknown_model(name)
            raise RepositoryError(f"model {name!r} in {self.uri} has no complete version yet")

        if isinstance(ref, int):
            manifest = self._read_manifest(name, ref)
            if manifest is not None:
                return manifest
            versions = [m.version for m in self.versions(name)]  # unknown model raises here
            listing = ", ".join(map(str, versions)) or "none"
            raise RepositoryError(
                f"model {name!r} in {self.uri} has no version {ref}; versions: {listing}"
            )

        key = self._alias_key(name, validate_name(ref, "alias"))
        try:
            version, digest = self._parse_alias_record(key, self.store.get_bytes(key))
        except ObjectNotFoundError:
            if not self._has_any(name):
                raise self._unknown_model(name) from None
            known = ", ".join(self.aliases(name)) or "none"
            raise RepositoryError(
                f"model {name!r} in {self.uri} has no alias {ref!r}; aliases: {known} "
                "(a reference is a version number, 'latest' or an alias)"
            ) from None
        manifest = self._read_manifest(name, version, expect_sha256=digest)
        if manifest is None:
            raise RepositoryError(
                f"alias {ref!r} of model {name!r} in {self.uri} points at version {version}, "
                "which does not exist"
            )
        return manifest

    # -- writing ---------------------------------------------------------------------------

    def _claim_version(self, name: str) -> int:
        """Own the next free version number, safely against concurrent pushers.

        The number goes past every existing version directory, complete or not, so a new
        version never mixes its files with leftovers of a crashed push.
        """
        claim = json.dumps(
            {"host": socket.gethostname(), "pid": os.getpid(), "claimed_at": utc_now()}
        ).encode()
        candidate = 0
        for _ in range(_MAX_CLAIM_ATTEMPTS):
            candidate = max([candidate, *self._version_numbers(name)]) + 1
            if self.store.put_if_absent(self._version_key(name, candidate, CLAIM_NAME), claim):
                return candidate
        raise RepositoryError(
            f"could not claim a version number for model {name!r} in {self.uri} after "
            f"{_MAX_CLAIM_ATTEMPTS} attempts (last tried {candidate})"
        )

    def push(
        self,
        name: str,
        model_dir: Path,
        *,
        params: dict[str, Any],
        metrics: dict[str, Any],
        data_fingerprint: str,
        study: str,
        trainer: str,
        extra: dict[str, Any] | None = None,
        alias: str | None = None,
    ) -> Manifest:
        """Store every file under ``model_dir`` as the next version of ``name``.

        Files go first and the manifest last, so the version appears atomically; then
        ``alias`` (if given) is moved to it. Returns the stored manifest.
        """
        validate_name(name)
        if alias is not None:
            _validate_alias(alias)
        model_dir = Path(model_dir)
        entries = []
        try:
            files = _collect_files(model_dir)
            for rel_path, real in files:
                digest, size = file_digest(real)
                entries.append(ManifestFile(path=rel_path, sha256=digest, size=size))
        except OSError as exc:
            raise RepositoryError(f"cannot read model directory {model_dir}: {exc}") from exc
        # Built before claiming a number so bad params/metrics fail without leaving leftovers.
        draft = Manifest(
            name=name,
            version=0,
            files=entries,
            params=params,
            metrics=metrics,
            data_fingerprint=data_fingerprint,
            study=study,
            trainer=trainer,
            extra=dict(extra or {}),
        )

        self.sweep_abandoned(name)
        version = self._claim_version(name)
        manifest = replace(draft, version=version, created_at=utc_now())
        try:
            for rel_path, real in files:
                self.store.put_file(self._version_key(name, version, rel_path), real)
            self.store.put_bytes(
                self._version_key(name, version, MANIFEST_NAME), manifest.to_json().encode()
            )
        except BaseException:
            self._discard_failed_push(name, version, [rel for rel, _ in files])
            raise
        if alias is not None:
            self.set_alias(name, alias, version)
        return manifest

    def _discard_failed_push(self, name: str, version: int, paths: list[str]) -> None:
        """Best effort after a push failed midway: delete what it uploaded (the number stays
        claimed). Only when the store says for sure that no manifest was written; if it
        cannot say (the server is down), the files stay, invisible, for ``sweep_abandoned``."""
        try:
            if self.store.exists(self._version_key(name, version, MANIFEST_NAME)):
                return
            for path in paths:
                self.store.delete(self._version_key(name, version, path))
        except RepositoryError:
            self._failed_pushes.add((name, version))

    def sweep_abandoned(self, name: str) -> list[int]:
        """Delete the files of pushes that died before their manifest; return their numbers.

        A version without a manifest whose claim was made on this host by a process that is
        gone, or more than ``_ABANDONED_AFTER_S`` ago elsewhere, will never complete. Its
        files go (they can be hundreds of MB); its claim stays, so the number is never
        reused. A version with a manifest is never touched.
        """
        swept = []
        for version in self._version_numbers(name):
            prefix = f"{self._versions_prefix(name)}{_version_dir(version)}/"
            if self.store.exists(prefix + MANIFEST_NAME):
                continue
            try:
                claim = json.loads(self.store.get_bytes(prefix + CLAIM_NAME))
            except (ObjectNotFoundError, ValueError):
                continue  # no claim we can read: not ours to judge
            if (name, version) not in self._failed_pushes and not _claim_abandoned(claim):
                continue
            leftovers = [k for k in self.store.list(prefix) if not k.endswith("/" + CLAIM_NAME)]
            if self.store.exists(prefix + MANIFEST_NAME):
                continue  # it completed while we looked
            for key in leftovers:
                self.store.delete(key)
            self._failed_pushes.discard((name, version))
            if leftovers:
                swept.append(version)
        return swept

    def set_alias(
        self, name: str, alias: str, version: int, *, expect: int | _Any | None = _ANY
    ) -> int | None:
        """Point ``alias`` of ``name`` at an existing ``version`` (moving it if it exists).

        Returns the version it pointed at before (None for a new alias), also stored as
        ``previous``. The move is a compare-and-swap retried on conflict, so a concurrent
        move is never overwritten unseen. With ``expect`` (a version, or None for "no alias
        yet") the move happens only while the alias still points there; otherwise
        :class:`AliasMovedError` says where it points now, so a decision taken on the old
        target (the champion gate) can be taken again.
        """
        validate_name(name)
        _validate_alias(alias)
        target = self.get(name, version)  # raises, listing versions, if it does not exist
        manifest_key = self._version_key(name, target.version, MANIFEST_NAME)
        manifest_sha256 = sha256_bytes(self.store.get_bytes(manifest_key))
        key = self._alias_key(name, alias)
        for attempt in range(_MAX_ALIAS_ATTEMPTS):
            try:
                raw, token = self.store.get_versioned(key)
            except ObjectNotFoundError:
                raw, token = None, None
            previous = None if raw is None else self._parse_alias(key, raw)
            if not isinstance(expect, _Any) and previous != expect:
                raise AliasMovedError(name, alias, expect, previous)
            body = {
                "version": target.version,
                "manifest_sha256": manifest_sha256,
                "updated_at": utc_now(),
                "previous": previous,
            }
            data = (json.dumps(body, indent=2) + "\n").encode()
            if token is None:
                moved = self.store.put_if_absent(key, data)
            else:
                moved = self.store.put_if_match(key, data, token)
            if moved:
                return previous
            # Another writer moved it between our read and our write: read again. The
            # jitter keeps a crowd of writers from colliding in lockstep.
            time.sleep(random.uniform(0, 0.001 * min(attempt + 1, 50)))  # noqa: S311 (jitter)
        raise RepositoryError(
            f"could not move alias {alias!r} of model {name!r} in {self.uri}: it changed"
            f" under every one of {_MAX_ALIAS_ATTEMPTS} attempts"
        )

    def version_uri(self, name: str, version: int) -> str:
        """The full URI of a version's folder (``file:///.../iris/versions/000003/``)."""
        return self.store.uri(f"{self._versions_prefix(name)}{_version_dir(version)}/")

    # -- pulling ---------------------------------------------------------------------------

    def pull(self, name: str, ref: int | str, dest: Path, *, overwrite: bool = False) -> Manifest:
        """Download ``name`` at ``ref`` into ``dest`` after verifying every file.

        Files land in a temporary directory next to ``dest`` and are checked against the
        manifest (size and sha256); only a fully verified version is moved into ``dest``,
        together with its ``manifest.json``. ``dest`` must not exist or be empty unless
        ``overwrite`` is true; on any failure it is left untouched.
        """
        manifest = self.get(name, ref)
        dest = Path(dest).absolute()
        if not overwrite and dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise RepositoryError(
                f"cannot pull model {name!r} version {manifest.version} into {dest}: "
                "it exists and is not empty"
            )
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.pull-", dir=dest.parent))
        except OSError as exc:
            raise RepositoryError(f"cannot pull into {dest}: {exc}") from exc
        try:
            self._refuse_unlisted(manifest)
            for entry in manifest.files:
                self._fetch_verified(manifest, entry, staging)
            (staging / MANIFEST_NAME).write_text(manifest.to_json())
            self._move_into(staging, dest, overwrite=overwrite)
        except OSError as exc:
            raise RepositoryError(f"cannot pull into {dest}: {exc}") from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return manifest

    def _refuse_unlisted(self, manifest: Manifest) -> None:
        """A version holds its manifest's files and nothing else: an object the manifest does
        not list was planted after the push (or a file was renamed), so the whole version is
        suspect and refused, not silently skipped."""
        for entry in manifest.files:  # an escaping path is the first thing to refuse
            try:
                validate_key(entry.path)
            except RepositoryError as exc:
                raise RepositoryError(
                    f"refusing file path of model {manifest.name!r} version "
                    f"{manifest.version} in {self.uri}: {exc}"
                ) from exc
        prefix = self._version_key(manifest.name, manifest.version, "")
        listed = {entry.path for entry in manifest.files} | set(_RESERVED_FILES)
        stored = (key[len(prefix) :] for key in self.store.list(prefix))
        extra = sorted(path for path in stored if path not in listed)
        if extra:
            raise RepositoryError(
                f"model {manifest.name!r} version {manifest.version} in {self.uri} holds "
                f"files its manifest does not list: {', '.join(extra[:5])}"
                + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
                + "; refusing to pull it"
            )

    def _fetch_verified(self, manifest: Manifest, entry: ManifestFile, staging: Path) -> None:
        where = f"model {manifest.name!r} version {manifest.version} in {self.uri}"
        try:
            # A manifest is data from storage: never let its paths write outside staging.
            validate_key(entry.path)
        except RepositoryError as exc:
            raise RepositoryError(f"refusing file path of {where}: {exc}") from exc
        local = staging.joinpath(*entry.path.split("/"))
        key = self._version_key(manifest.name, manifest.version, entry.path)
        try:
            # Hashed while it streams to disk: a 500 MB file is read once, never held.
            digest, size = download_hashed(self.store, key, local)
        except ObjectNotFoundError:
            raise RepositoryError(
                f"file {entry.path!r} of {where} is missing from the store "
                f"(expected sha256 {entry.sha256})"
            ) from None
        if digest != entry.sha256 or size != entry.size:
            raise RepositoryError(
                f"file {entry.path!r} of {where} fails verification: expected sha256 "
                f"{entry.sha256} ({entry.size} bytes), got {digest} ({size} bytes)"
            )

    @staticmethod
    def _move_into(staging: Path, dest: Path, *, overwrite: bool) -> None:
        if dest.is_dir() and not any(dest.iterdir()):
            dest.rmdir()
        if not dest.exists() and not dest.is_symlink():
            os.replace(staging, dest)
            return
        if not overwrite:
            raise RepositoryError(f"cannot pull into {dest}: it appeared during the download")
        # Swap: old dest aside, new one in, old one removed; a failure restores the old one.
        aside = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
        old = aside / "old"
        os.replace(dest, old)
        try:
            os.replace(staging, dest)
        except BaseException:
            os.replace(old, dest)
            raise
        finally:
            shutil.rmtree(aside, ignore_errors=True)
