"""The object-store conformance suite: behaviour every :class:`ObjectStore` must have.

A backend runs it by subclassing :class:`ObjectStoreConformance` in its tests with a
``store_factory`` fixture: a picklable zero-argument callable that returns a fresh client
of one empty store (picklable so the multi-process tests can rebuild it in a child)::

    class TestMyStore(ObjectStoreConformance):
        @pytest.fixture
        def store_factory(self, tmp_path):
            return functools.partial(MyStore, tmp_path / "store")

Like ``optuna.testing.pytest_storages``, the suite knows nothing about the backend; the
backend's own tests add what only it can check (temporary files, its client's quirks).
``test_uri_opens_the_same_store`` reopens the store from ``store.uri()`` through the
scheme registry, so the backend's scheme must be registered and its client configured
(e.g. credentials in the environment) in the test process.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kubetune.errors import StorageError
from kubetune.storage.base import ObjectNotFoundError, ObjectStore
from kubetune.storage.registry import open_store

__all__ = ["ObjectStoreConformance", "StoreFactory", "increment_counter"]

StoreFactory = Callable[[], ObjectStore]

COUNTER_KEY = "counters/n"


def increment_counter(factory: StoreFactory, count: int, start: Any, out: Any) -> None:
    """Add 1 to the integer at ``COUNTER_KEY`` ``count`` times by compare-and-swap; put
    the number of lost races on ``out``. Top level so a spawned child can run it."""
    store = factory()
    conflicts = 0
    start.wait(timeout=60)
    for _ in range(count):
        while True:
            data, token = store.get_versioned(COUNTER_KEY)
            if store.put_if_match(COUNTER_KEY, str(int(data) + 1).encode(), token):
                break
            conflicts += 1
    out.put(conflicts)


class ObjectStoreConformance:
    """Behaviour every :class:`ObjectStore` must have. Subclasses provide ``store_factory``."""

    @pytest.fixture
    def store(self, store_factory: StoreFactory) -> ObjectStore:
        return store_factory()

    # -- reading and writing ---------------------------------------------------------------

    def test_put_get_bytes_and_overwrite(self, store: ObjectStore) -> None:
        store.put_bytes("m/a.bin", b"one")
        assert store.get_bytes("m/a.bin") == b"one"
        store.put_bytes("m/a.bin", b"two")
        assert store.get_bytes("m/a.bin") == b"two"
        store.put_bytes("m/empty", b"")
        assert store.get_bytes("m/empty") == b""

    def test_put_file_and_download(self, store: ObjectStore, tmp_path: Path) -> None:
        src = tmp_path / "src.bin"
        src.write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # several chunks
        store.put_file("m/v/big.bin", src)
        dest = tmp_path / "out" / "deep" / "big.bin"
        store.download("m/v/big.bin", dest)
        assert dest.read_bytes() == src.read_bytes()

    def test_open_reader_streams_the_object(self, store: ObjectStore, tmp_path: Path) -> None:
        payload = os.urandom(2 * 1024 * 1024 + 3)
        store.put_bytes("m/r.bin", payload)
        with store.open_reader("m/r.bin") as reader:
            head = reader.read(10)
            rest = reader.read()
        assert head + rest == payload
        with pytest.raises(ObjectNotFoundError, match="nope/x"):
            store.open_reader("nope/x")  # raised on open, not on the first read
        with pytest.raises(StorageError, match="invalid object key"):
            store.open_reader("../x")

    def test_missing_key(self, store: ObjectStore, tmp_path: Path) -> None:
        with pytest.raises(ObjectNotFoundError, match="nope/x"):
            store.get_bytes("nope/x")
        with pytest.raises(ObjectNotFoundError, match="nope/x"):
            store.get_versioned("nope/x")
        with pytest.raises(StorageError, match="nope/x"):
            store.download("nope/x", tmp_path / "x")
        assert not (tmp_path / "x").exists()
        assert not store.exists("nope/x")

    def test_exists_and_delete(self, store: ObjectStore) -> None:
        store.put_bytes("m/a", b"1")
        assert store.exists("m/a")
        assert not store.exists("m")  # a prefix is not an object
        store.delete("m/a")
        assert not store.exists("m/a")
        store.delete("m/a")  # deleting a missing key is fine

    def test_list_prefix_semantics(self, store: ObjectStore) -> None:
        for key in ["a/b/c", "a/b/d", "a/x", "ab/y", "top"]:
            store.put_bytes(key, key.encode())
        assert store.list() == ["a/b/c", "a/b/d", "a/x", "ab/y", "top"]
        assert store.list("a/") == ["a/b/c", "a/b/d", "a/x"]
        assert store.list("a") == ["a/b/c", "a/b/d", "a/x", "ab/y"]  # a string prefix, as S3
        assert store.list("a/b/") == ["a/b/c", "a/b/d"]
        assert store.list("a/", recursive=False) == ["a/b/", "a/x"]
        assert store.list("", recursive=False) == ["a/", "ab/", "top"]
        assert store.list("zzz/") == []
        assert store.list("zzz/", recursive=False) == []

    def test_prefix_disappears_with_last_object(self, store: ObjectStore) -> None:
        store.put_bytes("a/b/c", b"1")
        store.put_bytes("a/x", b"1")
        store.delete("a/b/c")
        assert store.list("a/", recursive=False) == ["a/x"]

    @pytest.mark.parametrize(
        "key", ["", "/abs", "../up", "a/../b", "a//b", "a/./b", "a\\b", "x/.kt-tmp-1"]
    )
    def test_invalid_keys_rejected(self, store: ObjectStore, key: str) -> None:
        with pytest.raises(StorageError, match="invalid object key"):
            store.put_bytes(key, b"x")

    # -- put_if_absent (create_exclusive) ---------------------------------------------------

    def test_put_if_absent(self, store: ObjectStore) -> None:
        assert store.put_if_absent("m/claim", b"first") is True
        assert store.put_if_absent("m/claim", b"second") is False
        assert store.get_bytes("m/claim") == b"first"
        assert store.create_exclusive("m/claim", b"third") is False  # the former name
        assert store.create_exclusive("m/other", b"x") is True

    def test_put_if_absent_race(self, store_factory: StoreFactory) -> None:
        barrier = threading.Barrier(8)
        results: list[bool] = []
        lock = threading.Lock()

        def claim(i: int) -> None:
            store = store_factory()
            barrier.wait(timeout=10)
            won = store.put_if_absent("m/claim", f"{i}".encode())
            with lock:
                results.append(won)

        threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [False] * 7 + [True]

    # -- compare-and-swap -------------------------------------------------------------------

    def test_versioned_round_trip(self, store: ObjectStore) -> None:
        store.put_bytes("m/alias", b"v1")
        data, token = store.get_versioned("m/alias")
        assert data == b"v1"
        assert isinstance(token, str) and token
        assert store.get_versioned("m/alias") == (b"v1", token)  # stable while unchanged
        assert store.put_if_match("m/alias", b"v2", token) is True
        data2, token2 = store.get_versioned("m/alias")
        assert (data2, token2 != token) == (b"v2", True)

    def test_put_if_match_refuses_a_stale_token(self, store: ObjectStore) -> None:
        store.put_bytes("m/alias", b"v1")
        _, stale = store.get_versioned("m/alias")
        store.put_bytes("m/alias", b"changed by someone else")
        assert store.put_if_match("m/alias", b"mine", stale) is False
        assert store.get_bytes("m/alias") == b"changed by someone else"

    def test_put_if_match_refuses_a_deleted_object(self, store: ObjectStore) -> None:
        store.put_bytes("m/alias", b"v1")
        _, token = store.get_versioned("m/alias")
        store.delete("m/alias")
        assert store.put_if_match("m/alias", b"mine", token) is False
        assert not store.exists("m/alias")

    def test_put_if_match_refuses_a_made_up_token(self, store: ObjectStore) -> None:
        store.put_bytes("m/alias", b"v1")
        assert store.put_if_match("m/alias", b"mine", "not-a-token") is False
        assert store.put_if_match("m/missing", b"mine", "not-a-token") is False
        assert store.get_bytes("m/alias") == b"v1"
        assert not store.exists("m/missing")

    def test_only_one_of_two_writers_with_one_token_wins(self, store: ObjectStore) -> None:
        store.put_bytes("m/alias", b"v1")
        _, token = store.get_versioned("m/alias")
        assert store.put_if_match("m/alias", b"first", token) is True
        assert store.put_if_match("m/alias", b"second", token) is False
        assert store.get_bytes("m/alias") == b"first"

    def test_cas_counter_threads(self, store_factory: StoreFactory) -> None:
        store_factory().put_bytes(COUNTER_KEY, b"0")
        start = threading.Barrier(4)
        conflicts: list[int] = []
        errors: list[BaseException] = []

        class _Out:
            def put(self, value: int) -> None:
                conflicts.append(value)

        def worker() -> None:
            try:
                increment_counter(store_factory, 25, start, _Out())
            except BaseException as exc:  # surfaced in the main thread below
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert len(conflicts) == 4
        assert store_factory().get_bytes(COUNTER_KEY) == b"100"

    def test_cas_counter_processes(self, store_factory: StoreFactory) -> None:
        """N processes add 1 by get_versioned + put_if_match: no increment is lost."""
        store_factory().put_bytes(COUNTER_KEY, b"0")
        ctx = multiprocessing.get_context("spawn")  # independent interpreters
        n_procs, per_proc = 3, 20
        start = ctx.Barrier(n_procs)
        out = ctx.Queue()
        procs = [
            ctx.Process(target=increment_counter, args=(store_factory, per_proc, start, out))
            for _ in range(n_procs)
        ]
        for p in procs:
            p.start()
        conflicts = [out.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=30)
            assert p.exitcode == 0
        assert len(conflicts) == n_procs
        assert int(store_factory().get_bytes(COUNTER_KEY)) == n_procs * per_proc

    # -- uri --------------------------------------------------------------------------------

    def test_uri_names_the_key(self, store: ObjectStore) -> None:
        root = store.uri()
        assert "://" in root
        assert store.uri("m/a.bin") == root.rstrip("/") + "/m/a.bin"
        assert store.uri("m/") == root.rstrip("/") + "/m/"
        with pytest.raises(StorageError, match="invalid object key"):
            store.uri("../escape")

    def test_uri_opens_the_same_store(self, store: ObjectStore) -> None:
        store.put_bytes("m/a.bin", b"payload")
        assert open_store(store.uri()).get_bytes("m/a.bin") == b"payload"
        assert open_store(store.uri("m/")).get_bytes("a.bin") == b"payload"
