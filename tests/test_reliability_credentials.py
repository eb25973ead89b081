"""Reliability and security: credentials never leak (issue 14.8).

``kubetune run`` gets S3 credentials (``AWS_SECRET_ACCESS_KEY``, or files in
``KUBETUNE_S3_CREDENTIALS_DIR``) and a PostgreSQL password in its ``--storage`` URL, runs
trials on the subprocess executor (so trial request and result files exist) and pushes to
an S3 model repository; then the same with wrong credentials and unreachable servers. No
stdout or stderr line, no file it wrote (summary.json, report.html, logs, trial requests and
results), no object in the bucket (manifests included) and no study attribute may contain a
secret; a URL with a password is shown as ``user:***@host``.

S3 is **simulated**: moto's S3 server on 127.0.0.1 (``kubetune.testing.s3``), with its
signature checks switched on for the wrong-credentials case. PostgreSQL is the **real**
server ``.ci/run`` starts (``KUBETUNE_TEST_POSTGRES_URL``); the test makes a role and a
database of its own there, with a random password, and drops them at the end. Missing
moto/minio or PostgreSQL skips locally and fails in CI (``CI`` set).
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pytest

import kubetune
from kubetune.core.optuna_compat import study_system_attrs
from kubetune.core.redact import redact_url, url_password

pytestmark = pytest.mark.reliability

_MISSING = [m for m in ("minio", "moto", "psycopg2") if importlib.util.find_spec(m) is None]
if _MISSING and os.environ.get("CI"):
    raise RuntimeError(f"CI is set but {', '.join(_MISSING)} is not installed")

S3_ENV_SECRET = f"kt-env-secret-{secrets.token_hex(8)}"
S3_FILE_SECRET = f"kt-file-secret-{secrets.token_hex(8)}"
ACCESS_KEY = "kubetune-leak-test"


# --- the redaction helpers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:p%40ss@db:5432/x", "postgresql://u:***@db:5432/x"),
        ("postgresql+psycopg2://u:s3cr:et@db/x?sslmode=require", "postgresql+psycopg2://u:***@db/x?sslmode=require"),
        ("postgresql://u@db/x?password=hunter2&sslmode=disable", "postgresql://u@db/x?password=***&sslmode=disable"),
        ("sqlite:///study.db", "sqlite:///study.db"),
        ("postgresql://u:pw@[::1/x", "postgresql://***@[::1/x"),  # unparsable: hidden anyway
    ],
)  # fmt: skip
def test_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_the_password_of_a_url() -> None:
    assert url_password("postgresql://u:pw@db/x") == "pw"
    assert url_password("postgresql://u@db/x") is None


# --- the end-to-end runs ---------------------------------------------------------------------


def _postgres_url() -> str:
    url = os.environ.get("KUBETUNE_TEST_POSTGRES_URL")
    if url:
        return url
    message = "set KUBETUNE_TEST_POSTGRES_URL to a PostgreSQL database (.ci/run does)"
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {message}")  # never a silent skip in CI
    pytest.skip(message)


def _libpq(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme.split('+')[0]}://{rest}"


@dataclass(frozen=True)
class Database:
    url: str  # with the role's password
    password: str
    name: str


@pytest.fixture
def database() -> Iterator[Database]:
    """A role with a random password and a database it owns, on the real PostgreSQL."""
    import psycopg2
    from psycopg2 import sql

    admin_url = _postgres_url()
    name = f"kt_leak_{uuid.uuid4().hex[:8]}"
    password = f"pg-pw-{secrets.token_hex(8)}"
    admin = psycopg2.connect(_libpq(admin_url))
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(name)),
                (password,),
            )
            cursor.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(name), sql.Identifier(name)
                )
            )
        scheme, rest = admin_url.split("://", 1)
        host = rest.rpartition("@")[2].split("/", 1)[0]
        yield Database(f"{scheme}://{name}:{password}@{host}/{name}", password, name)
    finally:
        with admin.cursor() as cursor:
            cursor.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            cursor.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
        admin.close()


@pytest.fixture
def s3() -> Iterator[str]:
    """A simulated S3 server (moto) on a free loopback port, with a bucket; ``host:port``."""
    if _MISSING:
        pytest.skip(f"needs {', '.join(_MISSING)}")
    import minio

    from kubetune.testing.s3 import SimulatedS3Server

    with SimulatedS3Server() as server:
        client = minio.Minio(
            server.endpoint,
            access_key=ACCESS_KEY,
            secret_key=S3_ENV_SECRET,
            secure=False,
            region="us-east-1",
        )
        client.make_bucket("models")
        yield server.endpoint


SPEC = textwrap.dedent(
    """
    name: leak-{tag}
    objective: {{metric: val_accuracy}}
    data: {{source: "sklearn:iris"}}
    trainer: {{kind: sklearn, estimator: sklearn.neighbors.KNeighborsClassifier}}
    search_space: {{n_neighbors: {{type: int, low: 1, high: 9}}}}
    strategy: {{name: random}}
    executor: {{kind: subprocess}}
    limits: {{max_trials: 2, parallel: 2}}
    """
)


def _env(endpoint: str, **extra: str) -> dict[str, str]:
    here = str(Path(kubetune.__file__).resolve().parents[1])
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "MINIO_", "KUBETUNE_S3_", "KUBETUNE_STORAGE"))
    }
    env.update(
        PYTHONPATH=os.pathsep.join([here, *inherited]),
        PYTHONUNBUFFERED="1",
        KUBETUNE_S3_ENDPOINT=f"http://{endpoint}",
        AWS_REGION="us-east-1",
        KUBETUNE_S3_RETRIES="0",
        KUBETUNE_STORAGE_RETRIES="0",
    )
    env.update(extra)
    return env


def _run(
    folder: Path, tag: str, storage: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.yaml").write_text(SPEC.format(tag=tag))
    return subprocess.run(
        [
            sys.executable, "-m", "kubetune", "run", "spec.yaml",
            "--storage", storage, "--model-repo", "s3://models/repo",
        ],
        cwd=folder, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _leaks(texts: dict[str, str], secret_values: list[str]) -> list[str]:
    return [
        f"{where} shows {s!r}" for where, text in texts.items() for s in secret_values if s in text
    ]


def _files(folder: Path, skip: Path | None = None) -> dict[str, str]:
    found = {}
    for path in folder.rglob("*"):
        if path.is_file() and (skip is None or skip not in path.parents):
            found[str(path.relative_to(folder))] = path.read_bytes().decode("utf-8", "replace")
    return found


def _bucket_objects(endpoint: str) -> dict[str, str]:
    import minio

    client = minio.Minio(
        endpoint, access_key=ACCESS_KEY, secret_key=S3_ENV_SECRET, secure=False, region="us-east-1"
    )
    return {
        f"s3://models/{o.object_name}": client.get_object("models", o.object_name)
        .read()
        .decode("utf-8", "replace")
        for o in client.list_objects("models", recursive=True)
    }


def _study_attrs(storage: str) -> dict[str, str]:
    found: dict[str, Any] = {}
    for summary in optuna.get_all_study_summaries(storage):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        found[f"study {study.study_name}"] = (study.user_attrs, study_system_attrs(study))
        for t in study.get_trials(deepcopy=False):
            found[f"trial {t.number}"] = (t.user_attrs, t.system_attrs, t.params)
    return {k: repr(v) for k, v in found.items()}


@pytest.mark.slow
def test_no_secret_in_any_output_file_object_or_error(
    s3: str, database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    every_secret = [S3_ENV_SECRET, S3_FILE_SECRET, database.password]
    shown: dict[str, str] = {}

    # 1. Everything right: S3 keys from the environment, the password in the storage URL.
    env = _env(s3, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=S3_ENV_SECRET)
    ok = _run(tmp_path / "ok", "ok", database.url, env)
    assert ok.returncode == 0, ok.stderr
    shown.update({"ok stdout": ok.stdout, "ok stderr": ok.stderr})
    objects = _bucket_objects(s3)
    assert any(key.endswith("manifest.json") for key in objects)  # the model was pushed
    trial_files = [
        f for f in _files(tmp_path / "ok") if f.endswith(("request.json", "result.json"))
    ]
    assert trial_files  # the subprocess executor's files are among those checked

    # 2. S3 keys from a mounted Secret folder; the S3 server checks signatures from now on,
    #    and this secret is wrong: a clear error, before any trial runs.
    import moto.settings

    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    creds = tmp_path / "s3-credentials"
    creds.mkdir()
    (creds / "access-key").write_text(ACCESS_KEY + "\n")
    (creds / "secret-key").write_text(S3_FILE_SECRET + "\n")
    denied = _run(
        tmp_path / "denied", "denied", database.url,
        _env(s3, KUBETUNE_S3_CREDENTIALS_DIR=str(creds), AWS_SECRET_ACCESS_KEY=S3_ENV_SECRET),
    )  # fmt: skip
    assert denied.returncode != 0 and "error:" in denied.stderr, denied.stderr
    shown.update({"denied stdout": denied.stdout, "denied stderr": denied.stderr})

    # 3. A wrong database password, and 4. a database server that is not there.
    wrong_pw = database.url.replace(database.password, database.password[::-1])
    wrong = _run(tmp_path / "wrong-pw", "wrong", wrong_pw, env)
    unreachable_url = database.url.replace(
        database.url.rpartition("@")[2].split("/")[0], "127.0.0.1:9"
    )
    unreachable = _run(tmp_path / "unreachable", "gone", unreachable_url, env)
    for name, done, password in (
        ("wrong", wrong, database.password[::-1]),
        ("unreachable", unreachable, database.password),
    ):
        assert done.returncode == 2, done.stderr  # a usage error: fix the URL, run again
        lines = done.stderr.strip().splitlines()
        assert lines[-1].startswith("error: storage: cannot open the study database"), lines
        assert f"{database.name}:***@" in lines[-1] and "Traceback" not in done.stderr
        assert password not in done.stderr + done.stdout
        shown.update({f"{name} stdout": done.stdout, f"{name} stderr": done.stderr})

    # 5. An S3 endpoint that is not there.
    gone = _run(
        tmp_path / "s3-gone",
        "s3gone",
        database.url,
        {**env, "KUBETUNE_S3_ENDPOINT": "http://127.0.0.1:9"},
    )
    assert gone.returncode != 0 and "error:" in gone.stderr, gone.stderr
    shown.update({"s3-gone stdout": gone.stdout, "s3-gone stderr": gone.stderr})

    shown.update(_files(tmp_path, skip=creds))
    shown.update(objects)
    shown.update(_study_attrs(database.url))
    assert _leaks(shown, every_secret) == []
