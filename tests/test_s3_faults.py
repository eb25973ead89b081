"""Faults against simulated S3: moto's S3 server (``kubetune.testing.s3``) stopped and
restarted on the same port while the real ``minio`` client talks to it, plus keys with odd
characters. Production uses MinIO or AWS S3.

Missing minio/moto fails in CI (``CI`` set) and skips elsewhere, as in ``test_s3.py``.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubetune.errors import RepositoryError, StorageError

_MISSING = [m for m in ("minio", "moto") if importlib.util.find_spec(m) is None]
if _MISSING and os.environ.get("CI"):
    raise RuntimeError(f"CI is set but {', '.join(_MISSING)} is not installed")
if _MISSING:
    pytest.skip(f"simulated S3 needs {', '.join(_MISSING)}", allow_module_level=True)

from kubetune.repository import ModelRepository, open_repository  # noqa: E402
from kubetune.storage import open_store  # noqa: E402
from kubetune.storage.s3 import S3ObjectStore  # noqa: E402
from kubetune.testing.s3 import SimulatedS3Server  # noqa: E402
from test_repository import make_model_dir, push_kwargs, tree  # noqa: E402

pytestmark = pytest.mark.reliability  # part of the suite: pytest -m reliability

RETRIES = 2  # waits of 0 s and 1 s: a failing call takes about 1 s


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimulatedS3Server]:
    """A simulated S3 server of this test alone, that the test may stop and restart."""
    simulated = SimulatedS3Server().start()
    for name in (
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_SESSION_TOKEN",
        "KUBETUNE_S3_CA_BUNDLE",
        "KUBETUNE_S3_SECURE",
        "KUBETUNE_S3_CREDENTIALS_DIR",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KUBETUNE_S3_ENDPOINT", f"http://{simulated.endpoint}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "kubetune-faults")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "kubetune-faults-secret")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("KUBETUNE_S3_CREATE_BUCKET", "1")
    monkeypatch.setenv("KUBETUNE_S3_RETRIES", str(RETRIES))
    try:
        yield simulated
    finally:
        simulated.stop()


@pytest.fixture
def repo_uri(server: SimulatedS3Server) -> str:
    return f"s3://kt-faults-{uuid.uuid4().hex[:8]}/models"


def test_server_stopped_mid_push_then_the_same_push_succeeds(
    server: SimulatedS3Server, repo_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server goes away after the first file: the push fails within the bounded
    retries with an error naming the endpoint, no version is visible, and once the server
    is back the same push stores exactly the same files."""
    model_dir = make_model_dir(tmp_path / "model")
    repo = open_repository(repo_uri)
    store = repo.store
    assert isinstance(store, S3ObjectStore)
    real_put_file = store.put_file
    uploaded: list[str] = []

    def put_file_then_crash(key: str, local_path: Path) -> None:
        real_put_file(key, local_path)
        uploaded.append(key)
        server.stop()  # the next request finds nobody listening

    monkeypatch.setattr(store, "put_file", put_file_then_crash)
    started = time.monotonic()
    with pytest.raises(StorageError) as info:
        repo.push("iris", model_dir, **push_kwargs())
    elapsed = time.monotonic() - started
    assert f"http://{server.endpoint}" in str(info.value)
    assert "kubetune-faults-secret" not in str(info.value)
    # Each failing call retried with backoff (0 s, then 1 s) and then given up (the upload,
    # then the check for a manifest before cleaning up): bounded, not hanging.
    assert 1.9 < elapsed < 15, elapsed
    assert len(uploaded) == 1

    server.start()  # same port, same objects (like a MinIO with a persistent volume)
    monkeypatch.setattr(store, "put_file", real_put_file)
    reader = open_repository(repo_uri)
    assert reader.models() == [] and reader.versions("iris") == []  # nothing half-visible
    with pytest.raises(RepositoryError, match="no complete version"):
        reader.get("iris")

    again = open_repository(repo_uri)
    manifest = again.push("iris", model_dir, **push_kwargs())
    assert manifest.version == 2  # number 1 stays claimed by the failed push
    assert [m.version for m in reader.versions("iris")] == [2]
    pulled = tmp_path / "pulled"
    reader.pull("iris", "latest", pulled)
    files = tree(pulled)
    files.pop("manifest.json")
    assert files == tree(model_dir)  # identical to what a push without faults stores
    # The failed push's file is gone (deleted by the same repository object's next push).
    repo.push("iris", model_dir, **push_kwargs())
    assert store.list("iris/versions/000001/") == ["iris/versions/000001/.kubetune-claim"]


def test_a_short_outage_is_ridden_out_by_the_retries(
    server: SimulatedS3Server, repo_uri: str, tmp_path: Path
) -> None:
    """The server restarts while a call is retrying: the call succeeds."""
    store = open_store(repo_uri)
    store.put_bytes("a", b"before")
    server.stop()
    restart = threading.Timer(0.3, server.start)
    restart.start()
    try:
        assert store.get_bytes("a") == b"before"
    finally:
        restart.join()


def test_server_down_on_pull_leaves_the_destination_untouched(
    server: SimulatedS3Server, repo_uri: str, tmp_path: Path
) -> None:
    repo = open_repository(repo_uri)
    repo.push("iris", make_model_dir(tmp_path / "model"), **push_kwargs())
    manifest = repo.get("iris", 1)
    server.stop()
    dest = tmp_path / "dest"
    with pytest.raises(StorageError, match=server.endpoint):
        repo.pull("iris", 1, dest)
    assert not dest.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".dest")]
    server.start()
    assert repo.pull("iris", 1, dest) == manifest


ODD_KEYS = [
    "odd/with space.bin",
    "odd/plus+and%25percent.bin",
    "odd/query?hash#amp&eq=.bin",
    "odd/ünïcødé-文字.bin",
    "odd/semi;colon,comma'quote\"dq.bin",
    "odd/~tilde/!bang/(paren)/*star.bin",
]


def test_keys_with_odd_characters_round_trip(server: SimulatedS3Server, repo_uri: str) -> None:
    store = open_store(repo_uri)
    for i, key in enumerate(ODD_KEYS):
        store.put_bytes(key, f"payload {i}".encode())
    assert store.list("odd/") == sorted(ODD_KEYS)
    for i, key in enumerate(ODD_KEYS):
        assert store.get_bytes(key) == f"payload {i}".encode()
        assert store.exists(key)
        assert store.put_if_absent(key, b"again") is False
        data, token = store.get_versioned(key)
        assert data == f"payload {i}".encode()
        assert store.put_if_match(key, b"moved", token) is True
    store.delete(ODD_KEYS[0])
    assert store.list("odd/") == sorted(ODD_KEYS[1:])


def test_model_files_with_odd_names_and_dotdot_keys(
    server: SimulatedS3Server, repo_uri: str, tmp_path: Path
) -> None:
    model_dir = tmp_path / "model"
    (model_dir / "sub dir").mkdir(parents=True)
    (model_dir / "sub dir" / "wéights+1.bin").write_bytes(b"w" * 100)
    (model_dir / "a&b=c.json").write_text("{}")
    repo = open_repository(repo_uri)
    repo.push("iris", model_dir, **push_kwargs())
    repo.pull("iris", 1, tmp_path / "pulled")
    assert (tmp_path / "pulled" / "sub dir" / "wéights+1.bin").read_bytes() == b"w" * 100
    store = repo.store
    for key in ("../escape", "iris/../../x", "iris/versions/./1", "a//b"):
        with pytest.raises(StorageError, match="invalid object key"):
            store.put_bytes(key, b"x")
    with pytest.raises(StorageError, match="invalid prefix"):
        open_store(repo_uri + "/../other")


def test_concurrent_pushers_on_one_repository_get_distinct_versions(
    server: SimulatedS3Server, repo_uri: str, tmp_path: Path
) -> None:
    """Four threads, each with its own client, push at once: four distinct versions,
    all complete (the multi-process race runs in the S3 conformance suite too)."""
    model_dir = make_model_dir(tmp_path / "model")
    open_store(repo_uri).put_bytes("warm", b"1")  # create the bucket once
    barrier = threading.Barrier(4)
    versions: list[int] = []
    errors: list[BaseException] = []

    def push() -> None:
        repo: ModelRepository = open_repository(repo_uri)
        barrier.wait(timeout=30)
        try:
            versions.append(repo.push("iris", model_dir, **push_kwargs()).version)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=push) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(versions) == [1, 2, 3, 4]
    assert [m.version for m in open_repository(repo_uri).versions("iris")] == [1, 2, 3, 4]


def test_a_connection_dropped_mid_object_is_a_storage_error(
    server: SimulatedS3Server, repo_uri: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The real GET response from the simulated S3, whose body read fails halfway as a
    dropped connection does (urllib3's ProtocolError): the pull names the object and the
    endpoint, and the destination stays empty."""
    import urllib3

    repo = open_repository(repo_uri)
    repo.push("iris", make_model_dir(tmp_path / "model"), **push_kwargs())
    store = repo.store
    assert isinstance(store, S3ObjectStore)
    real_get = store._client.get_object

    def get_then_drop(bucket: str, name: str, *args: object, **kwargs: object) -> object:
        response = real_get(bucket, name, *args, **kwargs)
        if name.endswith("model.safetensors"):
            real_read = response.read

            calls = []

            def read(amt: int | None = None, **kw: object) -> bytes:
                calls.append(amt)
                if len(calls) == 1:
                    return real_read(10)  # the first bytes arrive...
                raise urllib3.exceptions.ProtocolError("Connection broken: IncompleteRead")

            monkeypatch.setattr(response, "read", read)
        return response

    monkeypatch.setattr(store._client, "get_object", get_then_drop)
    dest = tmp_path / "dest"
    with pytest.raises(StorageError) as info:
        repo.pull("iris", 1, dest)
    message = str(info.value)
    assert "model.safetensors" in message and server.endpoint in message
    assert "IncompleteRead" in message
    assert not dest.exists()
