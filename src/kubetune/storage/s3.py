""":class:`S3ObjectStore`: an object store in an S3 bucket (AWS, MinIO, any S3 API), over
the ``minio`` client (``pip install 'kubetune[s3]'``).

``s3://bucket/prefix`` is the store; every key lives under ``prefix/``. The client is
configured from the environment only, so no secret is ever written in a spec or a URI:

- ``KUBETUNE_S3_CREDENTIALS_DIR``: a folder holding the files ``access-key`` and
  ``secret-key`` (and optionally ``session-token``), e.g. a Kubernetes Secret mounted as a
  volume; when set, it wins over the variables below, and its files are read every time a
  client is made, so a rotated Secret is picked up by the next store opened;
- ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (aliases ``MINIO_ACCESS_KEY`` /
  ``MINIO_SECRET_KEY``) and ``AWS_SESSION_TOKEN``: the credentials (anonymous without them);
- ``KUBETUNE_S3_ENDPOINT``, else ``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL``: the
  server, ``host:port`` or ``http(s)://host:port`` (default ``s3.amazonaws.com``);
- ``KUBETUNE_S3_SECURE``: ``0``/``1`` turns TLS off/on (default: the endpoint's scheme,
  else on);
- ``KUBETUNE_S3_CA_BUNDLE``: a PEM file of CA certificates to trust (a private MinIO);
- ``AWS_REGION`` / ``AWS_DEFAULT_REGION``: the region (default: asked from the server);
- ``KUBETUNE_S3_CREATE_BUCKET=1``: create a missing bucket instead of failing;
- ``KUBETUNE_S3_RETRIES``: how often a request that could not connect, or got 500, 502,
  503 or 504, is retried (default 4), waiting 0, 1, 2, 4... s (exponential, at most 8 s
  each): about 7 s of server outage are ridden out, then a clear error names the endpoint.

Compare-and-swap uses the object's ETag as the version token: ``put_if_absent`` sends
``If-None-Match: *`` and ``put_if_match`` sends ``If-Match: "<etag>"``; the server answers
``412 PreconditionFailed`` when the condition does not hold (AWS since 2024, MinIO, moto).

Error messages name the URI and the endpoint, never a credential.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from kubetune.errors import StorageError
from kubetune.storage.atomic import atomic_write_chunks
from kubetune.storage.base import (
    RESERVED_PREFIXES,
    ObjectNotFoundError,
    ObjectStore,
    validate_key,
)

__all__ = ["S3Config", "S3ObjectStore", "conditional_put", "parse_s3_uri"]

_CHUNK = 1024 * 1024
_DEFAULT_ENDPOINT = "s3.amazonaws.com"
_BACKOFF_S, _BACKOFF_MAX_S = 0.5, 8.0
# S3 error codes that mean "the credentials are wrong or not allowed".
_AUTH_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "InvalidSecurity",
}


def _minio() -> Any:
    try:
        import minio
    except ImportError as exc:
        raise StorageError(
            "s3:// storage needs the minio client: pip install 'kubetune[s3]'"
        ) from exc
    return minio


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


CREDENTIALS_DIR_VAR = "KUBETUNE_S3_CREDENTIALS_DIR"
# File names in that folder: the keys of the Kubernetes Secret mounted there.
ACCESS_KEY_FILE, SECRET_KEY_FILE, SESSION_TOKEN_FILE = "access-key", "secret-key", "session-token"


def _read_secret_file(folder: Path, name: str, *, required: bool) -> str | None:
    path = folder / name
    try:
        value = path.read_text(encoding="utf-8").strip()  # `kubectl create --from-file` adds \n
    except FileNotFoundError:
        if required:
            raise StorageError(
                f"{CREDENTIALS_DIR_VAR}: {path} is missing (the folder must hold"
                f" {ACCESS_KEY_FILE!r} and {SECRET_KEY_FILE!r})"
            ) from None
        return None
    except (OSError, UnicodeDecodeError) as exc:
        # The reason only (permission denied, not UTF-8): never the content.
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise StorageError(f"{CREDENTIALS_DIR_VAR}: cannot read {path} ({reason})") from None
    if not value and required:
        raise StorageError(f"{CREDENTIALS_DIR_VAR}: {path} is empty")
    return value or None


def _credentials() -> tuple[str | None, str | None, str | None]:
    """(access key, secret key, session token): from the mounted folder when
    ``KUBETUNE_S3_CREDENTIALS_DIR`` is set, else from the environment."""
    folder = _env(CREDENTIALS_DIR_VAR)
    if folder is None:
        return (
            _env("AWS_ACCESS_KEY_ID", "MINIO_ACCESS_KEY"),
            _env("AWS_SECRET_ACCESS_KEY", "MINIO_SECRET_KEY"),
            _env("AWS_SESSION_TOKEN"),
        )
    root = Path(folder)
    if not root.is_dir():
        raise StorageError(f"{CREDENTIALS_DIR_VAR} {folder!r} is not a folder")
    return (
        _read_secret_file(root, ACCESS_KEY_FILE, required=True),
        _read_secret_file(root, SECRET_KEY_FILE, required=True),
        _read_secret_file(root, SESSION_TOKEN_FILE, required=False),
    )


def _flag(name: str) -> bool | None:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return None
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise StorageError(f"{name} must be 0 or 1, got {value!r}")


@dataclass(frozen=True)
class S3Config:
    """Where and how to reach the server. ``repr`` never shows the credentials."""

    endpoint: str  # host[:port]
    secure: bool
    region: str | None
    ca_bundle: str | None
    create_bucket: bool
    retries: int = 4
    access_key: str | None = None
    secret_key: str | None = None
    session_token: str | None = None

    def __repr__(self) -> str:
        return (
            f"S3Config(endpoint={self.endpoint!r}, secure={self.secure}, "
            f"region={self.region!r}, credentials={'set' if self.access_key else 'none'})"
        )

    @property
    def endpoint_url(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.endpoint}"

    @classmethod
    def from_env(cls) -> S3Config:
        raw = _env("KUBETUNE_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
        endpoint, secure = _DEFAULT_ENDPOINT, True
        if raw:
            if "://" in raw:
                parts = urlsplit(raw)
                if parts.scheme not in ("http", "https") or not parts.netloc:
                    raise StorageError(f"S3 endpoint must be host:port or http(s)://host, {raw!r}")
                # A URL may carry user:password@: drop it, credentials come from their vars.
                endpoint, secure = parts.netloc.rpartition("@")[2], parts.scheme == "https"
            else:
                endpoint = raw.rstrip("/")
        forced = _flag("KUBETUNE_S3_SECURE")
        ca_bundle = _env("KUBETUNE_S3_CA_BUNDLE")
        if ca_bundle and not Path(ca_bundle).is_file():
            raise StorageError(f"KUBETUNE_S3_CA_BUNDLE {ca_bundle!r} is not a file")
        access_key, secret_key, session_token = _credentials()
        retries = _env("KUBETUNE_S3_RETRIES") or "4"
        if not retries.isdigit() or int(retries) > 20:
            raise StorageError(f"KUBETUNE_S3_RETRIES must be a number from 0 to 20, {retries!r}")
        return cls(
            retries=int(retries),
            endpoint=endpoint,
            secure=secure if forced is None else forced,
            region=_env("AWS_REGION", "AWS_DEFAULT_REGION"),
            ca_bundle=ca_bundle,
            create_bucket=bool(_flag("KUBETUNE_S3_CREATE_BUCKET")),
            access_key=access_key,
            secret_key=secret_key,
            session_token=session_token,
        )

    def client(self) -> Any:
        minio = _minio()
        import urllib3

        # Bounded retries with exponential backoff (0, 1, 2, 4... s) ride out a server
        # restart; a wrong endpoint still fails in seconds, not minutes. urllib3 retries
        # connection failures for every method (nothing was sent) and 5xx answers for
        # idempotent ones (GET, HEAD, PUT, DELETE). The certificate check uses the CA
        # bundle when one is given.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=10, read=120),
            maxsize=16,
            retries=urllib3.Retry(
                total=self.retries,
                backoff_factor=_BACKOFF_S,
                backoff_max=_BACKOFF_MAX_S,
                status_forcelist=[500, 502, 503, 504],
            ),
            cert_reqs="CERT_REQUIRED",
            ca_certs=self.ca_bundle,
        )
        return minio.Minio(
            self.endpoint,
            access_key=self.access_key,
            secret_key=self.secret_key,
            session_token=self.session_token,
            secure=self.secure,
            region=self.region,
            http_client=http,
        )


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b/`` -> (``bucket``, ``a/b``)."""
    text = uri.strip()
    if not text.lower().startswith("s3://"):
        raise StorageError(f"{uri!r} is not an s3://bucket/prefix URI")
    bucket, _, prefix = text[5:].partition("/")
    if not bucket or "?" in text or "#" in text:
        raise StorageError(f"{uri!r} is not an s3://bucket/prefix URI")
    prefix = prefix.strip("/")
    if prefix:
        try:
            validate_key(prefix)
        except StorageError as exc:
            raise StorageError(f"invalid prefix in {uri!r}: {exc}") from None
    return bucket, prefix


def conditional_put(
    client: Any, bucket: str, name: str, data: bytes, header: str, value: str
) -> Any:
    """PUT ``data`` with one precondition header (``If-Match``/``If-None-Match``).

    The one place that uses minio's private ``_put_object``: the public ``put_object`` turns
    extra headers into ``x-amz-meta-*`` user metadata, so the server would never see the
    condition. ``tests/test_s3.py`` checks this call still sends the header as is.
    """
    return client._put_object(bucket, name, bytes(data), headers={header: value})


class _ObjectStream(io.RawIOBase):
    """An S3 GET response as a raw binary stream: a failure while reading (the server went
    away mid-object) is a :class:`StorageError` naming the object, and closing it gives the
    connection back to the pool."""

    def __init__(self, response: Any, fail: Any) -> None:
        self._response = response
        self._fail = fail

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        import urllib3

        try:
            data = self._response.read(len(buffer))
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._fail(exc) from None
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._response.close()
            self._response.release_conn()
        super().close()


def _valid_token(token: str) -> bool:
    # An ETag is printable ASCII without quotes; anything else cannot match (and must not
    # be sent as a header).
    return bool(token) and token.isascii() and token.isprintable() and '"' not in token


class S3ObjectStore(ObjectStore):
    """An :class:`ObjectStore` under ``s3://bucket/prefix``."""

    def __init__(self, bucket: str, prefix: str = "", *, config: S3Config | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.config = config or S3Config.from_env()
        self._client = self.config.client()
        self._bucket_checked = False

    @classmethod
    def from_uri(cls, uri: str, *, base_dir: Path) -> S3ObjectStore:
        bucket, prefix = parse_s3_uri(uri)
        return cls(bucket, prefix)

    def __repr__(self) -> str:
        return f"S3ObjectStore({self.uri()!r}, endpoint={self.config.endpoint_url!r})"

    @property
    def location(self) -> str:
        return self.uri()

    def uri(self, key: str = "") -> str:
        validate_key(key, prefix=True)
        root = f"s3://{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")
        return f"{root}/{key}" if key else root

    # -- helpers ---------------------------------------------------------------------------

    def _name(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _where(self) -> str:
        return f"bucket {self.bucket!r} at {self.config.endpoint_url}"

    def _scrub(self, text: str) -> str:
        for secret in (self.config.secret_key, self.config.session_token, self.config.access_key):
            if secret:
                text = text.replace(secret, "***")
        return text

    def _error(self, action: str, key: str, exc: BaseException) -> StorageError:
        """One clear error for a failed call, naming the URI and never a credential."""
        minio = _minio()
        target = self.uri(key) if key else self.uri()
        if isinstance(exc, minio.error.S3Error):
            code = exc.code or "error"
            if code in ("NoSuchKey", "NoSuchObject"):
                return ObjectNotFoundError(key, self.location)
            if code == "NoSuchBucket":
                return StorageError(
                    f"cannot {action} {target}: no {self._where()}"
                    " (create it, or set KUBETUNE_S3_CREATE_BUCKET=1)"
                )
            if code in _AUTH_CODES:
                return StorageError(
                    f"cannot {action} {target}: access denied by {self.config.endpoint_url}"
                    f" ({code}); check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
                    f" (or the files in {CREDENTIALS_DIR_VAR})"
                )
            detail = f"{code}: {exc.message}" if exc.message else code
        elif isinstance(exc, minio.error.ServerError):
            detail = f"HTTP {exc.status_code}"
        else:
            detail = f"{type(exc).__name__}: {exc}"
        return StorageError(
            self._scrub(f"cannot {action} {target} ({self.config.endpoint_url}): {detail}")
        )

    @contextlib.contextmanager
    def _errors(self, action: str, key: str = "") -> Iterator[None]:
        import urllib3

        minio = _minio()
        try:
            yield
        except StorageError:
            raise
        except (minio.error.MinioException, urllib3.exceptions.HTTPError, ValueError) as exc:
            raise self._error(action, key, exc) from None
        except OSError as exc:
            raise self._error(action, key, exc) from None

    def _ready(self) -> None:
        """Check the bucket once per client: a missing one is a clear error (or created)."""
        if self._bucket_checked:
            return
        with self._errors("open"):
            if not self._client.bucket_exists(self.bucket):
                if not self.config.create_bucket:
                    raise StorageError(
                        f"cannot open {self.uri()}: no {self._where()}"
                        " (create it, or set KUBETUNE_S3_CREATE_BUCKET=1)"
                    )
                try:
                    self._client.make_bucket(self.bucket)
                except _minio().error.S3Error as exc:
                    # Another process created it first: fine.
                    if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise
        self._bucket_checked = True

    def _conditional(self, key: str, data: bytes, header: str, value: str) -> bool:
        name = self._name(key)
        self._ready()
        minio = _minio()
        with self._errors("write", key):
            try:
                conditional_put(self._client, self.bucket, name, data, header, value)
            except minio.error.S3Error as exc:
                # 412: the condition failed; NoSuchKey: If-Match on a deleted object.
                if exc.code in ("PreconditionFailed", "NoSuchKey", "ConditionalRequestConflict"):
                    return False
                raise
        return True

    # -- ObjectStore -----------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes) -> None:
        name = self._name(key)
        self._ready()
        with self._errors("write", key):
            data = bytes(data)
            self._client.put_object(self.bucket, name, io.BytesIO(data), len(data))

    def put_file(self, key: str, local_path: Path) -> None:
        name = self._name(key)
        self._ready()
        with self._errors("write", key):
            # fput_object streams the file, in multipart uploads when it is large.
            self._client.fput_object(self.bucket, name, os.fspath(local_path))

    def get_bytes(self, key: str) -> bytes:
        return self.get_versioned(key)[0]

    def get_versioned(self, key: str) -> tuple[bytes, str]:
        name = self._name(key)
        self._ready()
        with self._errors("read", key):
            # One GET gives both: the ETag describes exactly the bytes returned.
            response = self._client.get_object(self.bucket, name)
            try:
                data = response.read()
                etag = response.headers.get("etag", "").strip('"')
            finally:
                response.close()
                response.release_conn()
        return data, etag

    def put_if_match(self, key: str, data: bytes, token: str) -> bool:
        if not _valid_token(str(token)):
            self._name(key)  # still refuse a bad key
            return False
        return self._conditional(key, data, "If-Match", f'"{token}"')

    def put_if_absent(self, key: str, data: bytes) -> bool:
        return self._conditional(key, data, "If-None-Match", "*")

    def download(self, key: str, local_path: Path) -> None:
        name = self._name(key)
        self._ready()
        local_path = Path(local_path)
        with self._errors("read", key):
            response = self._client.get_object(self.bucket, name)
            try:
                # Streamed into a temp file beside the target, renamed when complete.
                atomic_write_chunks(local_path, response.stream(_CHUNK))
            finally:
                response.close()
                response.release_conn()

    def open_reader(self, key: str) -> BinaryIO:
        name = self._name(key)
        self._ready()
        with self._errors("read", key):
            response = self._client.get_object(self.bucket, name)
        raw = _ObjectStream(response, lambda exc: self._error("read", key, exc))
        return io.BufferedReader(raw, _CHUNK)

    def list(self, prefix: str = "", *, recursive: bool = True) -> list[str]:
        validate_key(prefix, prefix=True)
        self._ready()
        root = f"{self.prefix}/" if self.prefix else ""
        found: list[str] = []
        with self._errors("list", prefix):
            for obj in self._client.list_objects(
                self.bucket, prefix=root + prefix, recursive=recursive
            ):
                rel = obj.object_name[len(root) :]
                if rel and not any(p.startswith(RESERVED_PREFIXES) for p in rel.split("/")):
                    found.append(rel)
        return sorted(found)

    def exists(self, key: str) -> bool:
        name = self._name(key)
        self._ready()
        minio = _minio()
        with self._errors("read", key):
            try:
                self._client.stat_object(self.bucket, name)
            except minio.error.S3Error as exc:
                if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                    return False
                raise
        return True

    def delete(self, key: str) -> None:
        name = self._name(key)
        self._ready()
        with self._errors("delete", key):
            self._client.remove_object(self.bucket, name)  # S3: a missing key is no error
