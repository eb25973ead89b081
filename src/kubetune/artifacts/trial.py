"""What a trial saves and loads: its checkpoint and files, in the trial artifact store.

One folder per trial of a study, in any object store (a local folder, ``s3://...``)::

    studies/<study>/trials/<number>/checkpoint.json                the latest checkpoint
    studies/<study>/trials/<number>/checkpoints/<seq>/<files...>   its files
    studies/<study>/trials/<number>/files/<name>                   other files
    studies/<study>/trials/<number>/optuna/<artifact id>           optuna artifacts
    studies/<study>/steps/<name>/...                               a controller step's
                                                                   (DARTS' supernet search)

A checkpoint is a file or a folder. Its files are uploaded first, under a fresh ``<seq>``,
and ``checkpoint.json`` (sha256 and size of every file, the step) is replaced last, so a
reader sees the previous checkpoint or the whole new one, and a trial killed while saving
leaves the previous one usable. Loading verifies every hash while it streams, and only a
complete, verified checkpoint reaches the destination.

Every attempt of one config shares the folder of its first trial (``request.retry_of``), so
a retried trial finds what the failed attempt saved. Another trial's folder
(:meth:`TrialArtifacts.for_trial`) is how a promoted config resumes from a lower rung or a
population-based trial copies a better one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kubetune.artifacts.optuna_store import ObjectArtifactStore
from kubetune.core.trial import TrialRequest
from kubetune.errors import StorageError
from kubetune.repository.manifest import file_digest, utc_now
from kubetune.storage.base import ObjectNotFoundError, ObjectStore, validate_key
from kubetune.storage.registry import open_store
from kubetune.storage.transfer import download_hashed

__all__ = [
    "CHECKPOINT_NAME",
    "Checkpoint",
    "StepArtifacts",
    "TrialArtifacts",
    "trial_artifacts",
]

CHECKPOINT_NAME = "checkpoint.json"
_FORMAT = 1


@dataclass(frozen=True)
class Checkpoint:
    """A saved checkpoint: ``files`` maps each relative path to (sha256, size)."""

    trial: int
    seq: int
    step: int | None
    saved_at: str
    files: dict[str, tuple[str, int]]
    single_file: bool  # saved from one file (load gives that file's path back)

    def to_json(self) -> bytes:
        body = {
            "format": _FORMAT,
            "trial": self.trial,
            "seq": self.seq,
            "step": self.step,
            "saved_at": self.saved_at,
            "single_file": self.single_file,
            "files": [
                {"path": p, "sha256": digest, "size": size}
                for p, (digest, size) in sorted(self.files.items())
            ],
        }
        return (json.dumps(body, indent=2) + "\n").encode()

    @classmethod
    def from_json(cls, raw: bytes, source: str) -> Checkpoint:
        try:
            body = json.loads(raw)
            if body.get("format") != _FORMAT:
                raise ValueError(f"unknown format {body.get('format')!r}")
            files = {}
            for entry in body["files"]:
                path = validate_key(str(entry["path"]))  # data from storage: stay inside
                files[path] = (str(entry["sha256"]), int(entry["size"]))
            return cls(
                trial=int(body["trial"]),
                seq=int(body["seq"]),
                step=None if body.get("step") is None else int(body["step"]),
                saved_at=str(body.get("saved_at", "")),
                files=files,
                single_file=bool(body.get("single_file", False)),
            )
        except (ValueError, KeyError, TypeError, StorageError) as exc:
            raise StorageError(f"malformed checkpoint record {source}: {exc}") from None


def _segment(value: str, what: str) -> str:
    if "/" in value:
        raise StorageError(f"invalid {what} {value!r} for an artifact folder: contains '/'")
    try:
        return validate_key(value)
    except StorageError as exc:
        raise StorageError(f"invalid {what} {value!r} for an artifact folder: {exc}") from None


def _local_files(source: Path) -> tuple[list[tuple[str, Path]], bool]:
    """(relative key, path) of every file to save from ``source``; whether it is one file."""
    if source.is_file():
        return [(source.name, source)], True
    if not source.is_dir():
        raise StorageError(f"cannot save checkpoint {source}: no such file or folder")
    found = []
    for dirpath, dirnames, names in os.walk(source):
        dirnames.sort()
        for name in sorted(names):
            path = Path(dirpath) / name
            rel = path.relative_to(source).as_posix()
            try:
                validate_key(rel)
            except StorageError as exc:
                raise StorageError(f"cannot save checkpoint file {path}: {exc}") from None
            found.append((rel, path))
    if not found:
        raise StorageError(f"cannot save checkpoint {source}: the folder holds no files")
    return found, False


class TrialArtifacts:
    """The artifact folder of trial ``number`` of ``study`` in ``store``."""

    def __init__(self, store: ObjectStore, study: str, number: int) -> None:
        if isinstance(number, bool) or not isinstance(number, int) or number < 0:
            raise StorageError(f"invalid trial number {number!r}")
        self.store = store
        self.study = _segment(study, "study name")
        self.number = number
        self.prefix = f"studies/{self.study}/trials/{number}/"

    def __repr__(self) -> str:
        return f"TrialArtifacts({self.uri!r})"

    @classmethod
    def open(
        cls, location: str, study: str, number: int, *, base_dir: Path | None = None
    ) -> TrialArtifacts:
        """The folder of one trial in the artifact store at ``location`` (a URI or folder)."""
        return cls(open_store(location, base_dir=base_dir), study, number)

    @property
    def uri(self) -> str:
        """The full URI of this trial's folder."""
        return self.store.uri(self.prefix)

    def for_trial(self, number: int) -> TrialArtifacts:
        """The folder of another trial of the same study (resume a promoted config from a
        lower rung, copy a better member of a population)."""
        return TrialArtifacts(self.store, self.study, number)

    def optuna_store(self) -> ObjectArtifactStore:
        """optuna's artifact-store protocol writing into this trial's folder, for
        ``optuna.artifacts.upload_artifact`` (readable by any store on the same root)."""
        return ObjectArtifactStore(self.store, self.prefix + "optuna/")

    # -- plain files -----------------------------------------------------------------------

    def _file_key(self, name: str) -> str:
        try:
            return self.prefix + "files/" + validate_key(name)
        except StorageError as exc:
            raise StorageError(f"invalid artifact name {name!r}: {exc}") from None

    def save_file(self, name: str, source: Path) -> str:
        """Upload the local file ``source`` as ``name`` (a relative path); return its URI."""
        key = self._file_key(name)
        self.store.put_file(key, Path(source))
        return self.store.uri(key)

    def load_file(self, name: str, dest: Path) -> Path:
        """Download ``name`` to the local path ``dest`` (atomically); return ``dest``."""
        self.store.download(self._file_key(name), Path(dest))
        return Path(dest)

    def files(self) -> list[str]:
        """Names of the files saved with :meth:`save_file`, sorted."""
        base = self.prefix + "files/"
        return [key[len(base) :] for key in self.store.list(base)]

    # -- checkpoints -----------------------------------------------------------------------

    def checkpoint(self) -> Checkpoint | None:
        """The latest checkpoint's record, or None when this trial saved none."""
        key = self.prefix + CHECKPOINT_NAME
        try:
            raw = self.store.get_bytes(key)
        except ObjectNotFoundError:
            return None
        return Checkpoint.from_json(raw, self.store.uri(key))

    def _seq_prefix(self, seq: int) -> str:
        return f"{self.prefix}checkpoints/{seq:06d}/"

    def save_checkpoint(self, source: Path, *, step: int | None = None) -> Checkpoint:
        """Save the file or folder ``source`` as this trial's latest checkpoint.

        ``step`` (an epoch, a budget) is kept in the record. The previous checkpoint stays
        the latest until this one is complete, then its files are deleted.
        """
        files, single = _local_files(Path(source))
        previous = self.checkpoint()
        seq = previous.seq + 1 if previous is not None else 1
        base = self._seq_prefix(seq)
        recorded = {}
        for rel, path in files:
            recorded[rel] = file_digest(path)
            self.store.put_file(base + rel, path)
        record = Checkpoint(
            trial=self.number,
            seq=seq,
            step=step,
            saved_at=utc_now(),
            files=recorded,
            single_file=single,
        )
        self.store.put_bytes(self.prefix + CHECKPOINT_NAME, record.to_json())
        self._delete_older_than(seq)
        return record

    def _delete_older_than(self, seq: int) -> None:
        # Best effort: a leftover only costs space and is never read (the record names seq).
        try:
            for entry in self.store.list(self.prefix + "checkpoints/", recursive=False):
                name = entry.rstrip("/").rsplit("/", 1)[-1]
                if entry.endswith("/") and name.isdigit() and int(name) < seq:
                    for key in self.store.list(entry):
                        self.store.delete(key)
        except StorageError:
            pass

    def load_checkpoint(self, dest: Path) -> Path | None:
        """Download and verify the latest checkpoint into the folder ``dest``.

        Returns the path to use: ``dest`` for a saved folder, ``dest/<name>`` for a saved
        file; None when the trial has no checkpoint (start from scratch). A file that is
        missing or fails its sha256 raises :class:`StorageError`, and ``dest`` gets nothing.
        """
        record = self.checkpoint()
        if record is None:
            return None
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".kt-tmp-checkpoint-", dir=dest))
        try:
            for rel, (digest, size) in record.files.items():
                key = self._seq_prefix(record.seq) + rel
                try:
                    got = download_hashed(self.store, key, staging.joinpath(*rel.split("/")))
                except ObjectNotFoundError:
                    raise StorageError(
                        f"checkpoint file {self.store.uri(key)} is missing"
                    ) from None
                if got != (digest, size):
                    raise StorageError(
                        f"checkpoint file {self.store.uri(key)} fails verification: expected"
                        f" sha256 {digest} ({size} bytes), got {got[0]} ({got[1]} bytes)"
                    )
            for rel in record.files:
                target = dest.joinpath(*rel.split("/"))
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging.joinpath(*rel.split("/")), target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if record.single_file:
            return dest / next(iter(record.files))
        return dest


class StepArtifacts(TrialArtifacts):
    """The artifact folder of work the controller does itself rather than as a trial
    (DARTS' supernet search): ``studies/<study>/steps/<name>/``, with the same atomic
    checkpoints, so a restarted controller (in another pod, with an empty disk) resumes
    it from the store. Its checkpoint records carry trial number 0: it belongs to no trial."""

    def __init__(self, store: ObjectStore, study: str, name: str) -> None:
        super().__init__(store, study, 0)
        self.name = _segment(name, "step name")
        self.prefix = f"studies/{self.study}/steps/{self.name}/"

    def __repr__(self) -> str:
        return f"StepArtifacts({self.uri!r})"

    @classmethod
    def open_step(
        cls, location: str, study: str, name: str, *, base_dir: Path | None = None
    ) -> StepArtifacts:
        """The folder of step ``name`` in the artifact store at ``location``."""
        return cls(open_store(location, base_dir=base_dir), study, name)


def trial_artifacts(request: TrialRequest, *, base_dir: Path | None = None) -> TrialArtifacts:
    """The artifact folder of the trial ``request`` describes (the first attempt's folder
    on a retry). Raises :class:`StorageError` when the request names no artifact store."""
    if not request.artifacts:
        raise StorageError(
            f"trial {request.number} of study {request.study!r} has no artifact store"
            " (set artifacts: in the spec or --artifacts)"
        )
    number = request.retry_of if request.retry_of is not None else request.number
    return TrialArtifacts.open(request.artifacts, request.study, number, base_dir=base_dir)
