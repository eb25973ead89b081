"""The S3 object store against simulated S3 (moto server): a real S3 HTTP server in a
thread, reached through the real ``minio`` client, so requests, signatures, conditional
headers and error bodies all go over the wire.

Skipped only when minio or moto is missing outside CI; in CI (``CI`` set) a missing
client fails the run instead, so the S3 tests can never silently stop running there.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubetune.errors import StorageError
from kubetune.storage import ObjectNotFoundError, open_store
from kubetune.testing.storage import ObjectStoreConformance, StoreFactory
from test_artifacts import ArtifactConformance
from test_data_prefix import check_prefix_source
from test_models_promote_diff import ModelsCommandsConformance
from test_repository import RepositoryConformance, make_model_dir, push_kwargs

_MISSING = [m for m in ("minio", "moto") if importlib.util.find_spec(m) is None]
if _MISSING and os.environ.get("CI"):
    raise RuntimeError(
        f"CI is set but {', '.join(_MISSING)} is not installed: the S3 tests must run in CI"
        " (pip install 'minio>=7.2', then 'moto[server]>=5')"
    )
if _MISSING:
    pytest.skip(f"simulated S3 needs {', '.join(_MISSING)}", allow_module_level=True)

from kubetune.storage.s3 import S3ObjectStore, conditional_put  # noqa: E402

ACCESS_KEY = "kubetune-test-access"
SECRET_KEY = "kt-secret-9f3a7c1e-do-not-print"
_BUCKETS = itertools.count()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """Simulated S3 (moto server) on a free local port; yields ``host:port``."""
    from kubetune.testing.s3 import SimulatedS3Server

    with SimulatedS3Server() as server:
        yield server.endpoint


@pytest.fixture
def s3_env(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the store at the simulated S3 through the environment (children inherit it)."""
    for name in (
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_SESSION_TOKEN",
        "AWS_DEFAULT_REGION",
        "MINIO_ACCESS_KEY",
        "MINIO_SECRET_KEY",
        "KUBETUNE_S3_CA_BUNDLE",
        "KUBETUNE_S3_CREATE_BUCKET",
        "KUBETUNE_S3_SECURE",
        "KUBETUNE_S3_CREDENTIALS_DIR",
        "KUBETUNE_S3_RETRIES",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KUBETUNE_S3_ENDPOINT", f"http://{moto_server}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    return moto_server


def _client(endpoint: str) -> Any:
    import minio

    return minio.Minio(
        endpoint, access_key=ACCESS_KEY, secret_key=SECRET_KEY, secure=False, region="us-east-1"
    )


@pytest.fixture
def bucket(s3_env: str) -> str:
    """A fresh, empty bucket per test."""
    name = f"kt-{os.getpid()}-{next(_BUCKETS)}-{uuid.uuid4().hex[:6]}"
    _client(s3_env).make_bucket(name)
    return name


@pytest.fixture
def s3_factory(bucket: str) -> StoreFactory:
    # Picklable: a spawned child rebuilds the client from the (inherited) environment.
    return functools.partial(S3ObjectStore.from_uri, f"s3://{bucket}/store", base_dir=Path("."))


class TestS3ObjectStoreOnSimulatedS3(ObjectStoreConformance):
    """The object-store contract on simulated S3 (moto server)."""

    @pytest.fixture
    def store_factory(self, s3_factory: StoreFactory) -> StoreFactory:
        return s3_factory


class TestS3RepositoryOnSimulatedS3(RepositoryConformance):
    """The model repository's semantics (versions, aliases by compare-and-swap, verified
    pulls, concurrent pushes and alias moves) on simulated S3 (moto server)."""

    @pytest.fixture
    def store_factory(self, s3_factory: StoreFactory) -> StoreFactory:
        return s3_factory


class TestArtifactsOnSimulatedS3(ArtifactConformance):
    """The trial artifact store (optuna's protocol, checkpoints) on simulated S3 (moto
    server)."""

    @pytest.fixture
    def store_factory(self, s3_factory: StoreFactory) -> StoreFactory:
        return s3_factory


class TestModelsCommandsOnSimulatedS3(ModelsCommandsConformance):
    """``models promote`` / ``models diff`` against simulated S3 (moto server)."""

    @pytest.fixture
    def repo_uri(self, bucket: str) -> str:
        return f"s3://{bucket}/models"


# -- S3-only behaviour -----------------------------------------------------------------------


def test_conditional_put_sends_the_header_itself(bucket: str, s3_env: str) -> None:
    """minio's private ``_put_object`` must send the precondition header as a header: if a
    minio upgrade renames it or turns headers into metadata, this fails loudly (and the
    store's compare-and-swap would silently overwrite)."""
    client = _client(s3_env)
    assert callable(getattr(client, "_put_object", None)), "minio removed _put_object"
    conditional_put(client, bucket, "k", b"one", "If-None-Match", "*")
    import minio

    with pytest.raises(minio.error.S3Error) as info:
        conditional_put(client, bucket, "k", b"two", "If-None-Match", "*")
    assert info.value.code == "PreconditionFailed"
    etag = client.stat_object(bucket, "k").etag.strip('"')
    with pytest.raises(minio.error.S3Error, match="PreconditionFailed"):
        conditional_put(client, bucket, "k", b"three", "If-Match", '"0123"')
    conditional_put(client, bucket, "k", b"four", "If-Match", f'"{etag}"')
    response = client.get_object(bucket, "k")
    try:
        assert response.read() == b"four"
        assert not any(h.lower().startswith("x-amz-meta-") for h in response.headers)
    finally:
        response.close()
        response.release_conn()


def test_keys_live_under_the_prefix(bucket: str, s3_env: str) -> None:
    store = open_store(f"s3://{bucket}/models/team/")
    assert isinstance(store, S3ObjectStore)
    store.put_bytes("iris/a", b"1")
    names = [o.object_name for o in _client(s3_env).list_objects(bucket, recursive=True)]
    assert names == ["models/team/iris/a"]
    assert store.uri("iris/a") == f"s3://{bucket}/models/team/iris/a"
    assert store.uri() == f"s3://{bucket}/models/team"
    assert open_store(f"s3://{bucket}").list() == ["models/team/iris/a"]


@pytest.mark.parametrize("key", ["../escape", "a/../../b", "a/./b", "/abs"])
@pytest.mark.reliability
def test_keys_that_escape_are_refused(bucket: str, key: str) -> None:
    store = S3ObjectStore(bucket, "p")
    for call in (
        lambda: store.put_bytes(key, b"x"),
        lambda: store.get_bytes(key),
        lambda: store.put_if_absent(key, b"x"),
        lambda: store.delete(key),
    ):
        with pytest.raises(StorageError, match="invalid object key"):
            call()
    assert store.list() == []


@pytest.mark.parametrize("uri", ["s3://", "s3:///p", "s3://b/../x", "s3://b/a/./c"])
@pytest.mark.reliability
def test_bad_uris_are_refused(s3_env: str, uri: str) -> None:
    with pytest.raises(StorageError, match="s3://"):
        open_store(uri)


@pytest.mark.reliability
def test_wrong_credentials_give_a_clear_error_without_the_secret(
    bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import moto.settings

    wrong_secret = "WRONG-secret-b7d2e0-never-shown"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong_secret)
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # moto checks keys
    store = S3ObjectStore(bucket, "models")
    with pytest.raises(StorageError) as info:
        store.get_bytes("iris/a")
    message = str(info.value)
    assert "access denied" in message and f"s3://{bucket}/models" in message
    assert "AWS_SECRET_ACCESS_KEY" in message  # says what to check...
    for text in (message, repr(info.value), repr(store), repr(store.config)):
        assert wrong_secret not in text  # ...never its value
        assert SECRET_KEY not in text


@pytest.mark.reliability
def test_secrets_never_shown(bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-tok-55aa")
    store = S3ObjectStore(bucket, "p")
    with pytest.raises(ObjectNotFoundError) as info:
        store.get_bytes("missing")
    for text in (repr(store), str(store.config), str(info.value), store.location):
        assert SECRET_KEY not in text and "session-tok-55aa" not in text


def test_missing_bucket_is_named(s3_env: str) -> None:
    store = open_store("s3://no-such-bucket-kt/models")
    with pytest.raises(StorageError) as info:
        store.list()
    message = str(info.value)
    assert "'no-such-bucket-kt'" in message and s3_env in message
    assert "KUBETUNE_S3_CREATE_BUCKET=1" in message


def test_missing_bucket_created_when_allowed(s3_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBETUNE_S3_CREATE_BUCKET", "1")
    name = f"kt-created-{uuid.uuid4().hex[:8]}"
    store = open_store(f"s3://{name}/models")
    store.put_bytes("a", b"1")
    assert _client(s3_env).bucket_exists(name)
    assert open_store(f"s3://{name}/models").get_bytes("a") == b"1"


@pytest.mark.reliability
def test_unreachable_endpoint_is_a_storage_error(
    s3_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBETUNE_S3_ENDPOINT", "http://127.0.0.1:9")  # nothing listens
    monkeypatch.setenv("KUBETUNE_S3_RETRIES", "0")  # retries: see test_s3_faults.py
    with pytest.raises(StorageError, match=r"s3://b/p.*127\.0\.0\.1:9"):
        open_store("s3://b/p").exists("x")


def test_endpoint_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from kubetune.storage.s3 import S3Config

    for name in (
        "KUBETUNE_S3_ENDPOINT",
        "AWS_ENDPOINT_URL_S3",
        "KUBETUNE_S3_SECURE",
        "KUBETUNE_S3_RETRIES",
        "KUBETUNE_S3_CREDENTIALS_DIR",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://minio.example:9000")
    monkeypatch.setenv("MINIO_ACCESS_KEY", "alias-key")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    config = S3Config.from_env()
    assert (config.endpoint, config.secure, config.access_key) == (
        "minio.example:9000",
        True,
        "alias-key",
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "minio.svc:9000")
    monkeypatch.setenv("KUBETUNE_S3_SECURE", "0")
    config = S3Config.from_env()
    assert (config.endpoint, config.secure) == ("minio.svc:9000", False)
    monkeypatch.setenv("KUBETUNE_S3_SECURE", "maybe")
    with pytest.raises(StorageError, match="KUBETUNE_S3_SECURE"):
        S3Config.from_env()
    monkeypatch.setenv("KUBETUNE_S3_SECURE", "1")
    assert S3Config.from_env().retries == 4
    monkeypatch.setenv("KUBETUNE_S3_RETRIES", "0")
    assert S3Config.from_env().retries == 0
    for bad in ("-1", "many", "21"):
        monkeypatch.setenv("KUBETUNE_S3_RETRIES", bad)
        with pytest.raises(StorageError, match="KUBETUNE_S3_RETRIES"):
            S3Config.from_env()
    monkeypatch.delenv("KUBETUNE_S3_RETRIES")
    monkeypatch.setenv("KUBETUNE_S3_CA_BUNDLE", "/no/such/ca.pem")
    with pytest.raises(StorageError, match="KUBETUNE_S3_CA_BUNDLE"):
        S3Config.from_env()


def test_without_minio_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "minio", None)  # import minio -> ImportError
    with pytest.raises(StorageError, match=r"pip install 'kubetune\[s3\]'"):
        open_store("s3://bucket/models")


@pytest.mark.reliability
def test_corrupted_object_is_refused_on_pull(bucket: str, s3_env: str, tmp_path: Path) -> None:
    """An object changed behind the repository's back (here straight through the S3 API)
    fails the hash check; nothing reaches the destination."""
    from kubetune.errors import RepositoryError
    from kubetune.repository import open_repository

    repo = open_repository(f"s3://{bucket}/models")
    repo.push("iris", make_model_dir(tmp_path / "m"), **push_kwargs())
    import io

    evil = b"tampered"
    _client(s3_env).put_object(
        bucket, "models/iris/versions/000001/config.json", io.BytesIO(evil), len(evil)
    )
    dest = tmp_path / "dest"
    with pytest.raises(RepositoryError, match=r"config\.json"):
        repo.pull("iris", 1, dest)
    assert not dest.exists()


def test_data_source_read_from_s3(bucket: str) -> None:
    from kubetune.data import load_dataset

    rows = "\n".join(f"{i % 7},{i % 3},{'ab'[i % 2]}" for i in range(60))
    open_store(f"s3://{bucket}/path").put_bytes("train.csv", f"x1,x2,label\n{rows}\n".encode())
    dataset = load_dataset(f"s3://{bucket}/path/train.csv", target="label")
    assert dataset.name == "train"
    from kubetune.errors import DataError

    with pytest.raises(DataError, match=r"'nope\.csv' not found"):
        load_dataset(f"s3://{bucket}/path/nope.csv", target="label")


def test_data_source_prefix_read_from_s3(bucket: str, tmp_path: Path) -> None:
    """Several CSV/Parquet objects under an S3 prefix read as one table (simulated S3)."""
    check_prefix_source(open_store(f"s3://{bucket}/data"), f"s3://{bucket}/data/", tmp_path)


TINY_SPEC = """\
name: s3-iris
objective: {metric: val_accuracy}
data: {source: "sklearn:iris"}
trainer: {kind: sklearn, estimator: sklearn.neighbors.KNeighborsClassifier}
search_space:
  n_neighbors: {type: int, low: 1, high: 9}
strategy: {name: random}
limits: {max_trials: 3, parallel: 1, timeout: 10m}
storage: study.journal
seed: 0
"""


@pytest.mark.slow
def test_run_then_models_list_and_pull_on_simulated_s3(
    bucket: str,
    s3_env: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``kubetune run --model-repo s3://...`` then ``models list`` and ``models pull``,
    end to end against simulated S3 (moto server)."""
    from kubetune.cli.main import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(TINY_SPEC)
    repo = f"s3://{bucket}/models"
    assert main(["run", "spec.yaml", "--model-repo", repo, "--output", "json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["completed"] == 3 and summary["model_version"] == 1
    assert summary["model_uri"].startswith(f"s3://{bucket}/models/s3-iris/versions/000001")

    assert main(["models", "--model-repo", repo, "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[1].split()[:4] == ["s3-iris", "1", "1", "production=1"]

    dest = tmp_path / "pulled"
    pull = ["models", "--model-repo", repo, "pull", "s3-iris", "production", "--dest", str(dest)]
    assert main(pull) == 0
    assert "pulled s3-iris v1" in capsys.readouterr().out
    manifest = json.loads((dest / "manifest.json").read_text())
    assert {e["path"] for e in manifest["files"]} <= {p.name for p in dest.iterdir()}
    assert not list(tmp_path.glob("s3-iris"))  # nothing written as a local "s3:" folder
    assert not (tmp_path / "s3:").exists()

    # What KServe's storage initializer does with storageUri=<version prefix>: copy every
    # object under it into a folder. That folder alone must load and predict.
    import kubetune

    prefix = "models/s3-iris/versions/000001/"
    served = tmp_path / "mnt-models"
    client = _client(s3_env)
    for obj in client.list_objects(bucket, prefix=prefix, recursive=True):
        client.fget_object(bucket, obj.object_name, str(served / obj.object_name[len(prefix) :]))
    from sklearn.datasets import load_iris

    rows = load_iris(as_frame=True).frame.drop(columns=["target"]).head(5)
    predictions = kubetune.load_model(served).predict(rows)
    assert len(predictions) == 5


# -- credentials and permissions (moto's IAM checks on) ----------------------------------------


def _iam_user(endpoint: str, resource: str) -> tuple[str, str]:
    """A user of the simulated IAM allowed ``s3:*`` on ``resource`` only; its keys."""
    import boto3

    iam = boto3.client(
        "iam",
        endpoint_url=f"http://{endpoint}",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )
    user = f"kt-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": resource}],
    }
    iam.put_user_policy(UserName=user, PolicyName="s3", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def _check_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on the simulated S3 checks signatures and IAM policies (moto's default is
    to let everything through)."""
    import moto.settings

    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)


@pytest.mark.reliability
def test_credentials_from_a_mounted_secret_folder(
    bucket: str, s3_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KUBETUNE_S3_CREDENTIALS_DIR (a Kubernetes Secret mounted as files) wins over the
    variables; a wrong or missing file is a clear error that never shows a secret."""
    access, secret = _iam_user(s3_env, "*")
    secrets = tmp_path / "s3-credentials"
    secrets.mkdir()
    (secrets / "access-key").write_text(access + "\n")  # kubectl --from-file keeps newlines
    (secrets / "secret-key").write_text(secret + "\n")
    monkeypatch.setenv("KUBETUNE_S3_CREDENTIALS_DIR", str(secrets))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret-that-must-lose")
    _check_auth(monkeypatch)
    store = open_store(f"s3://{bucket}/p")
    store.put_bytes("a", b"1")
    assert store.get_bytes("a") == b"1"
    assert secret not in repr(store.config) and secret not in repr(store)

    (secrets / "secret-key").write_text("wrong-secret-from-file")
    with pytest.raises(StorageError) as info:
        open_store(f"s3://{bucket}/p").get_bytes("a")  # files are read per store opened
    message = str(info.value)
    assert "access denied" in message and "KUBETUNE_S3_CREDENTIALS_DIR" in message
    assert "wrong-secret-from-file" not in message and secret not in message

    (secrets / "secret-key").unlink()
    with pytest.raises(StorageError, match=r"KUBETUNE_S3_CREDENTIALS_DIR: .*secret-key is missing"):
        open_store(f"s3://{bucket}/p")
    monkeypatch.setenv("KUBETUNE_S3_CREDENTIALS_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(StorageError, match="is not a folder"):
        open_store(f"s3://{bucket}/p")


@pytest.mark.reliability
def test_bucket_without_permission_is_named(
    s3_env: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A user allowed on one bucket only (an IAM policy of the simulated S3) gets a clear
    error naming the other bucket's URI and the endpoint, from the store, the repository
    and a data source."""
    from kubetune.data import load_dataset
    from kubetune.errors import DataError
    from kubetune.repository import open_repository

    mine, other = f"kt-mine-{uuid.uuid4().hex[:6]}", f"kt-other-{uuid.uuid4().hex[:6]}"
    _client(s3_env).make_bucket(mine)
    _client(s3_env).make_bucket(other)
    access, secret = _iam_user(s3_env, f"arn:aws:s3:::{mine}*")
    _check_auth(monkeypatch)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    open_store(f"s3://{mine}/models").put_bytes("ok", b"1")
    with pytest.raises(StorageError) as info:
        open_store(f"s3://{other}/models").put_bytes("x", b"1")
    assert f"s3://{other}/models" in str(info.value) and "access denied" in str(info.value)
    assert s3_env in str(info.value) and secret not in str(info.value)
    with pytest.raises(StorageError, match=f"s3://{other}/models"):
        open_repository(f"s3://{other}/models").push(
            "iris", make_model_dir(tmp_path / "m"), **push_kwargs()
        )
    with pytest.raises(DataError, match=f"s3://{other}/data"):
        load_dataset(f"s3://{other}/data/train.csv", target="label")
