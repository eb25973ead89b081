"""Model repository: object store contract, versions, aliases, verification, concurrency.

``ObjectStoreConformance`` (shipped in ``kubetune.testing.storage``) and
``RepositoryConformance`` are backend-independent suites (in the spirit of Optuna's
storage tests): a backend runs them by subclassing with a ``store_factory`` fixture that
yields a picklable zero-argument callable returning a fresh store client on the same
storage (picklable so the multi-process test can rebuild it in a child). The local
directory store runs them below; the S3 store will do the same.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import kubetune
from kubetune.errors import RepositoryError
from kubetune.repository import (
    LocalObjectStore,
    Manifest,
    ManifestFile,
    ModelRepository,
    ObjectStore,
    open_repository,
)
from kubetune.repository.cli_views import render_model_show, render_models_list
from kubetune.repository.manifest import file_digest, sha256_bytes
from kubetune.testing.storage import ObjectStoreConformance, StoreFactory

# -- helpers ---------------------------------------------------------------------------------


def make_model_dir(root: Path, seed: str = "a") -> Path:
    """A small model directory with a nested file, like a trainer would write."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "model.safetensors").write_bytes(f"weights-{seed}".encode() * 100)
    (root / "config.json").write_text(json.dumps({"seed": seed}))
    (root / "extra").mkdir(exist_ok=True)
    (root / "extra" / "vocab.txt").write_text(f"vocab {seed}\n")
    return root


def push_kwargs(**overrides: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "params": {"lr": 0.01, "layers": 2, "act": "relu"},
        "metrics": {"accuracy": 0.93},
        "data_fingerprint": "f" * 64,
        "study": "iris-study",
        "trainer": "sklearn",
    }
    kwargs.update(overrides)
    return kwargs


def tree(directory: Path) -> dict[str, bytes]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


class DelegatingStore(ObjectStore):
    """Forwards everything to ``inner``; tests override single methods to inject faults."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner

    @property
    def location(self) -> str:
        return self.inner.location

    def put_bytes(self, key: str, data: bytes) -> None:
        self.inner.put_bytes(key, data)

    def put_file(self, key: str, local_path: Path) -> None:
        self.inner.put_file(key, local_path)

    def get_bytes(self, key: str) -> bytes:
        return self.inner.get_bytes(key)

    def download(self, key: str, local_path: Path) -> None:
        self.inner.download(key, local_path)

    def list(self, prefix: str = "", *, recursive: bool = True) -> list[str]:
        return self.inner.list(prefix, recursive=recursive)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def uri(self, key: str = "") -> str:
        return self.inner.uri(key)

    def get_versioned(self, key: str) -> tuple[bytes, str]:
        return self.inner.get_versioned(key)

    def put_if_match(self, key: str, data: bytes, token: str) -> bool:
        return self.inner.put_if_match(key, data, token)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        return self.inner.put_if_absent(key, data)


class CrashOnManifestStore(DelegatingStore):
    """Simulates a pusher dying after uploading the files, before the manifest."""

    def put_bytes(self, key: str, data: bytes) -> None:
        if key.endswith("/manifest.json"):
            raise RuntimeError("simulated crash before the manifest")
        super().put_bytes(key, data)


def _move_alias(factory: StoreFactory, targets: list[int], start: Any, out: Any) -> None:
    """Child body of the concurrent alias test: move "production" to each target in turn
    and report every (previous, target) move."""
    repo = ModelRepository(factory(), "test-repo")
    start.wait(timeout=60)
    out.put([(repo.set_alias("shared", "production", v), v) for v in targets])


def assert_one_chain(
    moves: list[tuple[int | None, int]], first: int, repo: ModelRepository
) -> None:
    """The moves form one unbroken chain from ``first`` to the stored alias: no two moves
    started from the same state (a lost update would), and none is missing."""
    after: dict[int | None, int] = {}
    for previous, target in moves:
        assert previous not in after, f"two moves from version {previous}: {moves}"
        after[previous] = target
    chain, current = [], first
    while current in after:
        current = after[current]
        chain.append(current)
    assert sorted(chain) == sorted(target for _, target in moves)
    assert repo.resolve("shared", "production") == current
    stored = json.loads(repo.store.get_bytes("shared/aliases/production.json"))
    assert (stored["version"], stored["previous"]) == (current, moves_into(moves, current))


def moves_into(moves: list[tuple[int | None, int]], version: int) -> int | None:
    return next(previous for previous, target in moves if target == version)


def _hold_store_lock(root: str, ready: Any) -> None:
    """Child body: take the local store's writer lock and never let go (until killed)."""
    with LocalObjectStore(root)._locked():
        ready.set()
        time.sleep(600)


def _push_many(factory: StoreFactory, model_dir: str, count: int, start: Any, out: Any) -> None:
    """Child-process body of the multi-process test (top level so it can be pickled)."""
    repo = ModelRepository(factory(), "test-repo")
    start.wait(timeout=30)
    versions = [
        repo.push("shared", Path(model_dir), **push_kwargs(extra={"pid": os.getpid()})).version
        for _ in range(count)
    ]
    out.put(versions)


# -- repository behaviour --------------------------------------------------------------------


class RepositoryConformance:
    """Behaviour of :class:`ModelRepository` on any store. Subclasses provide ``store_factory``."""

    @pytest.fixture
    def store(self, store_factory: StoreFactory) -> ObjectStore:
        return store_factory()

    @pytest.fixture
    def repo(self, store: ObjectStore) -> ModelRepository:
        return ModelRepository(store, "test-repo")

    @pytest.fixture
    def model_dir(self, tmp_path: Path) -> Path:
        return make_model_dir(tmp_path / "model")

    def test_push_list_get_pull_round_trip(
        self, repo: ModelRepository, model_dir: Path, tmp_path: Path
    ) -> None:
        pushed = repo.push("iris", model_dir, **push_kwargs())
        assert pushed.version == 1
        assert repo.models() == ["iris"]
        assert [m.version for m in repo.versions("iris")] == [1]
        assert repo.get("iris", 1) == pushed
        assert repo.get("iris", "1") == pushed
        dest = tmp_path / "pulled" / "iris"
        pulled = repo.pull("iris", "latest", dest)
        assert pulled == pushed
        got = tree(dest)
        assert Manifest.from_json(got.pop("manifest.json")) == pushed
        assert got == tree(model_dir)
        assert not [p for p in dest.parent.iterdir() if p.name != "iris"]  # no staging left

    def test_versions_increase(self, repo: ModelRepository, tmp_path: Path) -> None:
        for i in range(3):
            manifest = repo.push(
                "iris", make_model_dir(tmp_path / f"m{i}", str(i)), **push_kwargs()
            )
            assert manifest.version == i + 1
        repo.push("wine", make_model_dir(tmp_path / "w"), **push_kwargs())
        assert [m.version for m in repo.versions("iris")] == [1, 2, 3]
        assert repo.models() == ["iris", "wine"]
        assert repo.get("iris", "latest").version == 3
        assert repo.get("wine").version == 1
        # each version keeps its own files
        dest = tmp_path / "v2"
        repo.pull("iris", 2, dest)
        assert (dest / "config.json").read_text() == json.dumps({"seed": "1"})

    def test_manifest_contents(self, repo: ModelRepository, model_dir: Path) -> None:
        before = time.time()
        manifest = repo.push(
            "iris",
            model_dir,
            **push_kwargs(
                extra={"note": "baseline"}, metrics={"accuracy": 0.93, "auc": float("nan")}
            ),
        )
        assert [f.path for f in manifest.files] == [
            "config.json",
            "extra/vocab.txt",
            "model.safetensors",
        ]
        for entry in manifest.files:
            digest, size = file_digest(model_dir / entry.path)
            assert (entry.sha256, entry.size) == (digest, size)
        assert manifest.params == {"lr": 0.01, "layers": 2, "act": "relu"}
        assert manifest.metrics == {"accuracy": 0.93, "auc": None}  # NaN is stored as null
        assert manifest.data_fingerprint == "f" * 64
        assert (manifest.study, manifest.trainer) == ("iris-study", "sklearn")
        assert manifest.kubetune_version == kubetune.__version__
        assert manifest.extra == {"note": "baseline"}
        assert manifest.created_at.endswith("Z")
        created = time.mktime(time.strptime(manifest.created_at, "%Y-%m-%dT%H:%M:%SZ"))
        assert created - time.timezone >= int(before) - 1
        # what is stored is what push returned
        stored = repo.store.get_bytes("iris/versions/000001/manifest.json")
        assert Manifest.from_json(stored) == manifest
        assert json.loads(stored)["format"] == 1

    def test_aliases_move_and_resolve(self, repo: ModelRepository, tmp_path: Path) -> None:
        repo.push("iris", make_model_dir(tmp_path / "a", "a"), **push_kwargs(), alias="production")
        assert repo.aliases("iris") == {"production": 1}
        assert repo.get("iris", "production").version == 1
        repo.push("iris", make_model_dir(tmp_path / "b", "b"), **push_kwargs(), alias="staging")
        assert repo.aliases("iris") == {"production": 1, "staging": 2}
        repo.set_alias("iris", "production", 2)
        assert repo.get("iris", "production").version == 2
        assert repo.resolve("iris", "production") == 2
        stored = json.loads(repo.store.get_bytes("iris/aliases/production.json"))
        assert (stored["version"], stored["previous"]) == (2, 1)
        assert "updated_at" in stored
        repo.set_alias("iris", "production", 1)  # roll back
        assert repo.aliases("iris") == {"production": 1, "staging": 2}

    @pytest.mark.reliability
    def test_alias_move_retries_after_a_concurrent_move(
        self, store: ObjectStore, tmp_path: Path
    ) -> None:
        """Another promotion lands between our read and our write: ours is refused, reads
        again, and records the other one as ``previous`` instead of overwriting it."""
        repo = ModelRepository(store, "test-repo")
        for i in range(3):
            repo.push("iris", make_model_dir(tmp_path / f"m{i}", str(i)), **push_kwargs())
        repo.set_alias("iris", "production", 1)
        refused: list[str] = []

        class InterferingStore(DelegatingStore):
            interfered = False

            def put_if_match(self, key: str, data: bytes, token: str) -> bool:
                if not self.interfered:
                    self.interfered = True
                    assert repo.set_alias("iris", "production", 2) == 1  # the other writer
                won = super().put_if_match(key, data, token)
                if not won:
                    refused.append(key)
                return won

        mine = ModelRepository(InterferingStore(store), "test-repo")
        assert mine.set_alias("iris", "production", 3) == 2
        assert refused == ["iris/aliases/production.json"]
        stored = json.loads(store.get_bytes("iris/aliases/production.json"))
        assert (stored["version"], stored["previous"]) == (3, 2)

    @pytest.mark.reliability
    def test_new_alias_created_concurrently(self, store: ObjectStore, model_dir: Path) -> None:
        repo = ModelRepository(store, "test-repo")
        repo.push("iris", model_dir, **push_kwargs())
        repo.push("iris", model_dir, **push_kwargs())

        class RacingStore(DelegatingStore):
            raced = False

            def put_if_absent(self, key: str, data: bytes) -> bool:
                if key.endswith("/aliases/staging.json") and not self.raced:
                    self.raced = True
                    assert repo.set_alias("iris", "staging", 1) is None
                return super().put_if_absent(key, data)

        mine = ModelRepository(RacingStore(store), "test-repo")
        assert mine.set_alias("iris", "staging", 2) == 1
        assert repo.aliases("iris") == {"staging": 2}

    @pytest.mark.reliability
    def test_concurrent_alias_moves_threads(
        self, store_factory: StoreFactory, model_dir: Path
    ) -> None:
        repo = ModelRepository(store_factory(), "test-repo")
        for _ in range(13):
            repo.push("shared", model_dir, **push_kwargs())
        repo.set_alias("shared", "production", 1)
        start = threading.Barrier(4)
        moves: list[tuple[int | None, int]] = []
        errors: list[BaseException] = []

        class _Out:
            def put(self, value: list[tuple[int | None, int]]) -> None:
                moves.extend(value)

        def worker(targets: list[int]) -> None:
            try:
                _move_alias(store_factory, targets, start, _Out())
            except BaseException as exc:  # surfaced in the main thread below
                errors.append(exc)

        threads = [
            threading.Thread(target=worker, args=(list(range(2 + i, 14, 4)),)) for i in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert len(moves) == 12
        assert_one_chain(moves, 1, repo)

    @pytest.mark.reliability
    def test_concurrent_alias_moves_processes(
        self, store_factory: StoreFactory, model_dir: Path
    ) -> None:
        repo = ModelRepository(store_factory(), "test-repo")
        for _ in range(10):
            repo.push("shared", model_dir, **push_kwargs())
        repo.set_alias("shared", "production", 1)
        ctx = multiprocessing.get_context("spawn")  # independent interpreters
        start = ctx.Barrier(3)
        out = ctx.Queue()
        procs = [
            ctx.Process(
                target=_move_alias, args=(store_factory, list(range(2 + i, 11, 3)), start, out)
            )
            for i in range(3)
        ]
        for p in procs:
            p.start()
        moves = [move for _ in procs for move in out.get(timeout=120)]
        for p in procs:
            p.join(timeout=30)
            assert p.exitcode == 0
        assert len(moves) == 9
        assert_one_chain(moves, 1, repo)

    def test_alias_errors(self, repo: ModelRepository, model_dir: Path) -> None:
        repo.push("iris", model_dir, **push_kwargs(), alias="production")
        with pytest.raises(RepositoryError, match=r"no version 7; versions: 1"):
            repo.set_alias("iris", "production", 7)
        for bad in ("latest", "42", "Prod", ""):
            with pytest.raises(RepositoryError, match="invalid alias"):
                repo.set_alias("iris", bad, 1)
        with pytest.raises(RepositoryError, match="invalid alias"):
            repo.push("iris", model_dir, **push_kwargs(), alias="latest")
        assert [m.version for m in repo.versions("iris")] == [1]  # rejected before claiming

    @pytest.mark.reliability
    def test_tampered_file_is_refused(
        self, repo: ModelRepository, model_dir: Path, tmp_path: Path
    ) -> None:
        manifest = repo.push("iris", model_dir, **push_kwargs())
        repo.store.put_bytes("iris/versions/000001/extra/vocab.txt", b"evil\n")
        expected = manifest.file("extra/vocab.txt").sha256
        dest = tmp_path / "dest"
        with pytest.raises(RepositoryError) as info:
            repo.pull("iris", 1, dest)
        message = str(info.value)
        assert "extra/vocab.txt" in message
        assert expected in message and sha256_bytes(b"evil\n") in message
        assert not dest.exists()
        # an existing dest is left exactly as it was, even with overwrite
        dest.mkdir()
        (dest / "keep.txt").write_text("mine")
        with pytest.raises(RepositoryError, match=r"extra/vocab\.txt"):
            repo.pull("iris", 1, dest, overwrite=True)
        assert tree(dest) == {"keep.txt": b"mine"}
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left

    @pytest.mark.reliability
    def test_missing_file_is_refused(
        self, repo: ModelRepository, model_dir: Path, tmp_path: Path
    ) -> None:
        repo.push("iris", model_dir, **push_kwargs())
        repo.store.delete("iris/versions/000001/model.safetensors")
        dest = tmp_path / "dest"
        with pytest.raises(RepositoryError, match=r"'model.safetensors'.*missing"):
            repo.pull("iris", "latest", dest)
        assert not dest.exists()

    @pytest.mark.reliability
    def test_extra_file_is_refused(
        self, repo: ModelRepository, model_dir: Path, tmp_path: Path
    ) -> None:
        repo.push("iris", model_dir, **push_kwargs())
        repo.store.put_bytes("iris/versions/000001/planted.pkl", b"not in the manifest")
        dest = tmp_path / "dest"
        with pytest.raises(RepositoryError, match=r"does not list: planted.pkl"):
            repo.pull("iris", "latest", dest)
        assert not dest.exists()

    @pytest.mark.reliability
    def test_manifest_paths_cannot_escape(
        self, repo: ModelRepository, model_dir: Path, tmp_path: Path
    ) -> None:
        manifest = repo.push("iris", model_dir, **push_kwargs())
        evil = Manifest(
            name="iris",
            version=1,
            files=[ManifestFile("../../escaped.txt", "0" * 64, 1)],
            created_at=manifest.created_at,
        )
        repo.store.put_bytes("iris/versions/000001/manifest.json", evil.to_json().encode())
        with pytest.raises(RepositoryError, match="refusing file path"):
            repo.pull("iris", 1, tmp_path / "deep" / "dest")
        assert not list(tmp_path.rglob("escaped.txt"))

    def test_pull_into_existing_dest(
        self, repo: ModelRepository, model_dir: Path, tmp_path: Path
    ) -> None:
        repo.push("iris", model_dir, **push_kwargs())
        dest = tmp_path / "dest"
        dest.mkdir()
        repo.pull("iris", 1, dest)  # an empty directory is fine
        with pytest.raises(RepositoryError, match="not empty"):
            repo.pull("iris", 1, dest)
        (dest / "stale.txt").write_text("old")
        repo.pull("iris", 1, dest, overwrite=True)
        assert "stale.txt" not in tree(dest)
        assert (dest / "model.safetensors").exists()

    @pytest.mark.reliability
    def test_crashed_push_leaves_no_version(
        self, store: ObjectStore, model_dir: Path, tmp_path: Path
    ) -> None:
        repo = ModelRepository(store, "test-repo")
        repo.push("iris", model_dir, **push_kwargs())
        crashing = ModelRepository(CrashOnManifestStore(store), "test-repo")
        with pytest.raises(RuntimeError, match="simulated crash"):
            crashing.push("iris", make_model_dir(tmp_path / "b", "b"), **push_kwargs())
        # the failed push deleted the files it uploaded and keeps its number: without a
        # manifest nobody sees version 2
        assert store.list("iris/versions/000002/") == ["iris/versions/000002/.kubetune-claim"]
        assert [m.version for m in repo.versions("iris")] == [1]
        assert repo.get("iris", "latest").version == 1
        with pytest.raises(RepositoryError, match=r"no version 2; versions: 1"):
            repo.get("iris", 2)
        # the next push never reuses the leftover's number, so files never mix
        third = repo.push("iris", make_model_dir(tmp_path / "c", "c"), **push_kwargs())
        assert third.version == 3
        assert [m.version for m in repo.versions("iris")] == [1, 3]
        repo.pull("iris", 3, tmp_path / "pulled")

    @pytest.mark.reliability
    def test_crashed_first_push_hides_model(self, store: ObjectStore, model_dir: Path) -> None:
        crashing = ModelRepository(CrashOnManifestStore(store), "test-repo")
        with pytest.raises(RuntimeError):
            crashing.push("iris", model_dir, **push_kwargs())
        repo = ModelRepository(store, "test-repo")
        assert repo.models() == []
        assert repo.versions("iris") == []
        with pytest.raises(RepositoryError, match="no complete version"):
            repo.get("iris")
        assert repo.push("iris", model_dir, **push_kwargs()).version == 2

    @pytest.mark.reliability
    def test_concurrent_claims_collide_and_retry(
        self, store_factory: StoreFactory, model_dir: Path
    ) -> None:
        """Both pushers list the same state before claiming, so they race for one number."""
        barrier = threading.Barrier(2)
        refused: list[str] = []

        class SyncedStore(DelegatingStore):
            first = True

            def put_if_absent(self, key: str, data: bytes) -> bool:
                if self.first:
                    self.first = False
                    barrier.wait(timeout=10)
                won = super().put_if_absent(key, data)
                if not won:
                    refused.append(key)
                return won

        results: list[int] = []

        def push() -> None:
            repo = ModelRepository(SyncedStore(store_factory()), "test-repo")
            results.append(repo.push("iris", model_dir, **push_kwargs()).version)

        threads = [threading.Thread(target=push) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [1, 2]
        assert refused == ["iris/versions/000001/.kubetune-claim"]

    @pytest.mark.reliability
    def test_concurrent_pushes_threads(
        self, store_factory: StoreFactory, model_dir: Path, tmp_path: Path
    ) -> None:
        start = threading.Barrier(2)
        results: list[list[int]] = []
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                repo = ModelRepository(store_factory(), "test-repo")
                start.wait(timeout=10)
                results.append(
                    [repo.push("shared", model_dir, **push_kwargs()).version for _ in range(5)]
                )
            except BaseException as exc:  # surfaced in the main thread below
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert sorted(v for r in results for v in r) == list(range(1, 11))
        self._assert_all_verify(ModelRepository(store_factory(), "test-repo"), tmp_path, 10)

    @pytest.mark.reliability
    def test_concurrent_pushes_processes(
        self, store_factory: StoreFactory, model_dir: Path, tmp_path: Path
    ) -> None:
        ctx = multiprocessing.get_context("spawn")  # independent interpreters, no shared state
        start = ctx.Barrier(2)
        out = ctx.Queue()
        procs = [
            ctx.Process(target=_push_many, args=(store_factory, str(model_dir), 4, start, out))
            for _ in range(2)
        ]
        for p in procs:
            p.start()
        results = [out.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(timeout=30)
            assert p.exitcode == 0
        assert sorted(v for r in results for v in r) == list(range(1, 9))
        repo = ModelRepository(store_factory(), "test-repo")
        assert len({m.extra["pid"] for m in repo.versions("shared")}) == 2
        self._assert_all_verify(repo, tmp_path, 8)

    @staticmethod
    def _assert_all_verify(repo: ModelRepository, tmp_path: Path, count: int) -> None:
        manifests = repo.versions("shared")
        assert [m.version for m in manifests] == list(range(1, count + 1))
        for m in manifests:
            repo.pull("shared", m.version, tmp_path / "verify" / str(m.version))

    @pytest.mark.parametrize("bad", ["Iris", "my model", "", "a" * 64, "-x", "x/y", "naïve", ".."])
    def test_bad_name(self, repo: ModelRepository, model_dir: Path, bad: str) -> None:
        with pytest.raises(RepositoryError, match="invalid model name") as info:
            repo.push(bad, model_dir, **push_kwargs())
        assert repr(bad) in str(info.value)
        assert repo.store.list() == []

    def test_good_names(self, repo: ModelRepository, model_dir: Path) -> None:
        for name in ["a", "iris-v2_final", "0x", "a" * 63]:
            assert repo.push(name, model_dir, **push_kwargs()).name == name

    def test_unknown_things_list_what_exists(self, repo: ModelRepository, model_dir: Path) -> None:
        with pytest.raises(RepositoryError, match=r"no model 'iris' in test-repo; models: none"):
            repo.get("iris")
        repo.push("iris", model_dir, **push_kwargs(), alias="production")
        repo.push("wine", model_dir, **push_kwargs(), alias="staging")
        with pytest.raises(RepositoryError, match=r"no model 'cars'.*models: iris, wine"):
            repo.get("cars", "latest")
        with pytest.raises(RepositoryError, match=r"no model 'cars'.*models: iris, wine"):
            repo.versions("cars")
        with pytest.raises(RepositoryError, match=r"no model 'cars'"):
            repo.get("cars", "production")
        with pytest.raises(RepositoryError, match=r"no alias 'prod'; aliases: production"):
            repo.get("iris", "prod")
        with pytest.raises(RepositoryError, match=r"no version 9; versions: 1"):
            repo.get("iris", 9)
        assert repo.aliases("cars") == {}

    def test_bad_inputs_fail_before_claiming(self, repo: ModelRepository, tmp_path: Path) -> None:
        with pytest.raises(RepositoryError, match="does not exist"):
            repo.push("iris", tmp_path / "missing", **push_kwargs())
        (tmp_path / "empty").mkdir()
        with pytest.raises(RepositoryError, match="no files"):
            repo.push("iris", tmp_path / "empty", **push_kwargs())
        with pytest.raises(RepositoryError, match="'params' cannot be stored"):
            repo.push("iris", make_model_dir(tmp_path / "m"), **push_kwargs(params={"f": object()}))
        assert repo.store.list() == []

    def test_reserved_file_name(self, repo: ModelRepository, model_dir: Path) -> None:
        (model_dir / "manifest.json").write_text("{}")
        with pytest.raises(RepositoryError, match="reserved"):
            repo.push("iris", model_dir, **push_kwargs())

    def test_numpy_values_are_stored_as_plain_json(
        self, repo: ModelRepository, model_dir: Path
    ) -> None:
        np = pytest.importorskip("numpy")
        manifest = repo.push(
            "iris",
            model_dir,
            **push_kwargs(
                params={"lr": np.float32(0.5), "n": np.int64(3)}, metrics={"a": np.float64(1)}
            ),
        )
        assert manifest.params == {"lr": 0.5, "n": 3}
        assert repo.get("iris") == manifest

    def test_cli_views(self, repo: ModelRepository, model_dir: Path, tmp_path: Path) -> None:
        assert render_models_list(repo) == "No models in test-repo."
        repo.push("iris", model_dir, **push_kwargs(), alias="production")
        repo.push(
            "iris", make_model_dir(tmp_path / "b", "b"), **push_kwargs(metrics={"accuracy": 0.97})
        )
        listing = render_models_list(repo)
        assert listing.splitlines()[0].split() == [
            "NAME",
            "VERSIONS",
            "LATEST",
            "ALIASES",
            "UPDATED",
        ]
        assert listing.splitlines()[1].split()[:4] == ["iris", "2", "2", "production=1"]
        versions = render_models_list(repo, "iris").splitlines()
        assert versions[0].split()[:3] == ["VERSION", "CREATED", "ALIASES"]
        assert versions[1].split()[0] == "1" and "production" in versions[1]
        assert "accuracy=0.97" in versions[2]
        shown = render_model_show(repo, "iris", "production")
        manifest = repo.get("iris", 1)
        lines = shown.splitlines()
        assert lines[0].split() == ["model", "iris"]
        assert lines[1].split() == ["version", "1"]
        assert lines[2].split() == ["aliases", "production"]
        assert "params:" in lines and "metrics:" in lines
        assert ["lr", "0.01"] in [line.split() for line in lines]
        assert ["accuracy", "0.93"] in [line.split() for line in lines]
        assert len(manifest.files) == 3  # else the loop below checks nothing
        for entry in manifest.files:
            assert entry.path in shown and entry.sha256[:12] in shown
            assert entry.sha256 not in shown  # short hashes only
        with pytest.raises(RepositoryError, match="no alias"):
            render_model_show(repo, "iris", "nope")


# -- the local directory store ---------------------------------------------------------------


@pytest.fixture
def local_factory(tmp_path: Path) -> Iterator[StoreFactory]:
    yield functools.partial(LocalObjectStore, tmp_path / "store")


class TestLocalObjectStore(ObjectStoreConformance):
    @pytest.fixture
    def store_factory(self, local_factory: StoreFactory) -> StoreFactory:
        return local_factory

    def test_no_temp_files_left(self, store: ObjectStore, tmp_path: Path) -> None:
        assert isinstance(store, LocalObjectStore)
        store.put_bytes("m/a", b"1")
        store.put_file("m/b", make_model_dir(tmp_path / "src") / "config.json")
        store.create_exclusive("m/c", b"1")
        store.create_exclusive("m/c", b"2")
        with pytest.raises(RepositoryError, match="m/d"):
            store.put_file("m/d", tmp_path / "does-not-exist")
        files = sorted(p.name for p in store.root.rglob("*") if p.is_file())
        assert files == ["a", "b", "c"]

    @pytest.mark.reliability
    def test_a_killed_lock_holder_blocks_nobody(self, store: ObjectStore) -> None:
        """A writer killed while holding the lock (kill -9, OOM) releases it with its death:
        the kernel drops a flock, so the next compare-and-swap goes through."""
        assert isinstance(store, LocalObjectStore)
        store.put_bytes("m/a", b"1")
        _, token = store.get_versioned("m/a")
        ctx = multiprocessing.get_context("spawn")
        ready = ctx.Event()
        holder = ctx.Process(target=_hold_store_lock, args=(str(store.root), ready))
        holder.start()
        done = threading.Event()
        results: list[bool] = []

        def swap() -> None:
            results.append(store.put_if_match("m/a", b"2", token))
            done.set()

        writer = threading.Thread(target=swap)
        try:
            assert ready.wait(timeout=60)
            writer.start()
            assert not done.wait(timeout=0.5)  # the holder excludes other writers...
            holder.kill()
            assert done.wait(timeout=30)  # ...until it dies
        finally:
            holder.kill()
            holder.join(timeout=30)
            writer.join(timeout=30)
        assert results == [True]
        assert store.get_bytes("m/a") == b"2"

    @pytest.mark.reliability
    def test_readers_never_see_partial_writes(self, store: ObjectStore) -> None:
        payloads = [b"A" * 2_000_000, b"B" * 2_000_000]
        store.put_bytes("m/w", payloads[0])
        stop = threading.Event()
        writes = [0]
        errors: list[BaseException] = []

        def writer() -> None:
            try:
                while not stop.is_set():
                    writes[0] += 1
                    store.put_bytes("m/w", payloads[writes[0] % 2])
            except BaseException as exc:  # surfaced in the main thread below
                errors.append(exc)

        thread = threading.Thread(target=writer)
        thread.start()
        seen: set[bytes] = set()
        try:
            # read while the writer keeps replacing the object: at least 40 reads, and on
            # until both payloads were read and a second write began, so the reads did
            # overlap the writes (a reader can see write 1 before its writer returns and
            # counts write 2, under load: stopping then made the check below flaky)
            deadline = time.monotonic() + 30
            reads = 0
            while reads < 40 or len(seen) < 2 or writes[0] < 2:
                assert time.monotonic() < deadline, (reads, writes[0], errors)
                data = store.get_bytes("m/w")
                assert data in payloads
                seen.add(data)
                reads += 1
        finally:
            stop.set()
            thread.join()
        assert not errors
        assert writes[0] > 1

    def test_root_that_is_a_file(self, tmp_path: Path) -> None:
        (tmp_path / "file").write_text("x")
        with pytest.raises(RepositoryError, match="not a directory"):
            LocalObjectStore(tmp_path / "file")

    def test_missing_root_reads_as_empty(self, tmp_path: Path) -> None:
        store = LocalObjectStore(tmp_path / "later")
        assert store.list() == []
        assert not (tmp_path / "later").exists()


class TestLocalRepository(RepositoryConformance):
    @pytest.fixture
    def store_factory(self, local_factory: StoreFactory) -> StoreFactory:
        return local_factory

    @pytest.mark.reliability
    def test_symlinks(self, repo: ModelRepository, model_dir: Path, tmp_path: Path) -> None:
        (model_dir / "alias.json").symlink_to("config.json")  # inside: stored as a file
        (model_dir / "linked").symlink_to("extra", target_is_directory=True)
        manifest = repo.push("iris", model_dir, **push_kwargs())
        paths = {f.path for f in manifest.files}
        assert {"alias.json", "linked/vocab.txt"} <= paths
        assert manifest.file("alias.json").sha256 == manifest.file("config.json").sha256
        (model_dir / "loop").symlink_to(".", target_is_directory=True)
        with pytest.raises(RepositoryError, match="loop"):
            repo.push("iris", model_dir, **push_kwargs())
        (model_dir / "loop").unlink()
        outside = tmp_path / "secret.txt"
        outside.write_text("secret")
        (model_dir / "leak").symlink_to(outside)
        with pytest.raises(RepositoryError, match="outside the model directory"):
            repo.push("iris", model_dir, **push_kwargs())
        assert [m.version for m in repo.versions("iris")] == [1]

    def test_leftover_dirs_do_not_show(self, repo: ModelRepository, model_dir: Path) -> None:
        assert isinstance(repo.store, LocalObjectStore)
        stray = repo.store.root / "iris" / "versions" / "000005"
        stray.mkdir(parents=True)
        (stray / "model.safetensors").write_bytes(b"half")
        (repo.store.root / "iris" / "versions" / "notes").mkdir()
        assert repo.versions("iris") == []
        assert repo.push("iris", model_dir, **push_kwargs()).version == 6


# -- manifest --------------------------------------------------------------------------------


class TestManifest:
    def test_json_round_trip(self) -> None:
        manifest = Manifest(
            name="iris",
            version=3,
            files=[ManifestFile("b.bin", "1" * 64, 2), ManifestFile("a.bin", "2" * 64, 1)],
            params={"lr": 0.1, "sizes": (8, 4)},
            metrics={"rmse": float("inf")},
            data_fingerprint=None,  # type: ignore[arg-type]
        )
        assert [f.path for f in manifest.files] == ["a.bin", "b.bin"]
        assert manifest.params == {"lr": 0.1, "sizes": [8, 4]}
        assert manifest.metrics == {"rmse": None}
        assert manifest.data_fingerprint == ""
        assert manifest.total_size == 3
        assert Manifest.from_json(manifest.to_json()) == manifest
        with pytest.raises(RepositoryError, match=r"no file 'c\.bin'; files: a\.bin, b\.bin"):
            manifest.file("c.bin")

    @pytest.mark.parametrize(
        ("text", "problem"),
        [
            ("not json", "not valid JSON"),
            ("[]", "not a JSON object"),
            ('{"name": "x", "version": 1}', "missing key 'files'"),
            ('{"name": "x", "version": "1", "files": []}', "not an integer"),
            ('{"format": 99, "name": "x", "version": 1, "files": []}', "newer"),
        ],
    )
    @pytest.mark.reliability
    def test_malformed(self, text: str, problem: str) -> None:
        with pytest.raises(RepositoryError, match=f"malformed manifest somewhere: .*{problem}"):
            Manifest.from_json(text, source="somewhere")


# -- open_repository -------------------------------------------------------------------------


class TestOpenRepository:
    def test_relative_path_uses_base_dir(self, tmp_path: Path) -> None:
        repo = open_repository("models", base_dir=tmp_path)
        assert isinstance(repo.store, LocalObjectStore)
        assert repo.store.root == tmp_path / "models"
        assert repo.uri == str(tmp_path / "models")

    def test_relative_path_uses_cwd(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        repo = open_repository("./repo")
        assert isinstance(repo.store, LocalObjectStore)
        assert repo.store.root == tmp_path / "repo"

    def test_absolute_path_and_path_object(self, tmp_path: Path) -> None:
        repo = open_repository(str(tmp_path / "abs"), base_dir=Path("/elsewhere"))
        assert isinstance(repo.store, LocalObjectStore)
        assert repo.store.root == tmp_path / "abs"
        assert open_repository(tmp_path / "abs").uri == str(tmp_path / "abs")

    def test_file_uri(self, tmp_path: Path) -> None:
        uri = f"file://{tmp_path}/with%20space"
        repo = open_repository(uri)
        assert isinstance(repo.store, LocalObjectStore)
        assert repo.store.root == tmp_path / "with space"
        assert repo.uri == uri
        repo.push("iris", make_model_dir(tmp_path / "m"), **push_kwargs())
        assert (tmp_path / "with space" / "iris" / "versions" / "000001" / "manifest.json").exists()
        assert open_repository(f"file://localhost{tmp_path}/with%20space").models() == ["iris"]

    def test_short_file_uri(self, tmp_path: Path) -> None:
        repo = open_repository(f"file:{tmp_path}/short")
        assert isinstance(repo.store, LocalObjectStore)
        assert repo.store.root == tmp_path / "short"

    def test_file_uri_must_be_absolute(self) -> None:
        with pytest.raises(RepositoryError, match="absolute path"):
            open_repository("file://relative/dir")

    def test_planned_scheme_not_yet(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from kubetune.storage import registry

        monkeypatch.setattr(registry, "_PLANNED", {"gs": "the GCS support"})
        with pytest.raises(RepositoryError) as info:
            open_repository("gs://bucket/prefix")
        assert str(info.value) == (
            "gs:// model repositories arrive with the GCS support; use a directory or file:// URI"
        )

    @pytest.mark.parametrize("uri", ["gs://bucket/x", "http://host/x"])
    def test_unknown_scheme(self, uri: str) -> None:
        with pytest.raises(RepositoryError, match="unsupported model repository URI"):
            open_repository(uri)

    def test_empty(self) -> None:
        with pytest.raises(RepositoryError, match="empty"):
            open_repository("  ")


class TestKilledPushLeftovers:
    """Issue 7.15: a push killed midway left a partial version and a big temp folder."""

    def _dead_pid(self) -> int:
        import subprocess
        import sys

        proc = subprocess.Popen([sys.executable, "-c", "pass"])
        proc.wait()
        return proc.pid

    @pytest.mark.reliability
    def test_the_next_push_removes_a_dead_push_but_keeps_its_number(self, tmp_path: Path) -> None:
        import socket

        repo = open_repository(tmp_path / "repo")
        model = make_model_dir(tmp_path / "model")
        repo.push("m", model, **push_kwargs())
        # what a push killed after its claim and one file looks like
        dead = {"host": socket.gethostname(), "pid": self._dead_pid(), "claimed_at": "x"}
        repo.store.put_bytes("m/versions/000002/.kubetune-claim", json.dumps(dead).encode())
        repo.store.put_bytes("m/versions/000002/model.safetensors", b"half" * 1000)
        # a push of a live process (this one) in progress is left alone
        alive = {**dead, "pid": os.getpid()}
        repo.store.put_bytes("m/versions/000003/.kubetune-claim", json.dumps(alive).encode())
        repo.store.put_bytes("m/versions/000003/model.safetensors", b"going")

        manifest = repo.push("m", model, **push_kwargs())
        assert manifest.version == 4  # numbers are never reused
        assert repo.store.list("m/versions/000002/") == ["m/versions/000002/.kubetune-claim"]
        assert repo.store.exists("m/versions/000003/model.safetensors")
        assert [v.version for v in repo.versions("m")] == [1, 4]  # complete ones untouched
        assert repo.get("m", 1).files and repo.get("m", 4).files

    def test_old_claims_from_other_hosts_are_swept_recent_ones_kept(self, tmp_path: Path) -> None:
        repo = open_repository(tmp_path / "repo")
        for version, when in ((1, "2020-01-01T00:00:00Z"), (2, "2999-01-01T00:00:00Z")):
            claim = {"host": "elsewhere", "pid": 1, "claimed_at": when}
            repo.store.put_bytes(
                f"m/versions/00000{version}/.kubetune-claim", json.dumps(claim).encode()
            )
            repo.store.put_bytes(f"m/versions/00000{version}/w.bin", b"w")
        assert repo.sweep_abandoned("m") == [1]
        assert repo.store.exists("m/versions/000002/w.bin")

    @pytest.mark.reliability
    def test_scratch_folders_of_dead_processes_are_removed(self, tmp_path: Path) -> None:
        from kubetune.storage.scratch import sweep_scratch

        dead = tmp_path / f"kubetune-model-{self._dead_pid()}-abc"
        live = tmp_path / f"kubetune-model-{os.getpid()}-def"
        other = tmp_path / "kubetune-champion-1-x"
        for folder in (dead, live, other):
            folder.mkdir()
            (folder / "model.safetensors").write_bytes(b"x" * 100)
        assert sweep_scratch("model", root=tmp_path) == [dead]
        assert not dead.exists() and live.exists() and other.exists()
