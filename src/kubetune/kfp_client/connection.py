"""How kubetune reaches a Kubeflow Pipelines API: settings from flags or the environment,
a ``kfp.Client`` built from them, and its failures turned into one-line errors.

Everything goes through the kfp SDK's own client (``kfp.Client``), so kubetune speaks
exactly the v2beta1 REST API that the SDK of the installed kfp version speaks.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubetune.errors import KubetuneError

if TYPE_CHECKING:
    import kfp

__all__ = [
    "ENV_CA_BUNDLE",
    "ENV_COOKIES",
    "ENV_HOST",
    "ENV_NAMESPACE",
    "ENV_TOKEN",
    "KfpError",
    "KfpSettings",
    "connect",
    "kfp_errors",
]

# KF_PIPELINES_ENDPOINT is the kfp SDK's own variable; the others follow its naming.
ENV_HOST = "KF_PIPELINES_ENDPOINT"
ENV_NAMESPACE = "KF_PIPELINES_NAMESPACE"
ENV_TOKEN = "KF_PIPELINES_TOKEN"  # noqa: S105 - the variable's name, not a token
ENV_COOKIES = "KF_PIPELINES_COOKIES"
ENV_CA_BUNDLE = "KF_PIPELINES_CA_BUNDLE"


class KfpError(KubetuneError):
    """The KFP API cannot be used: unreachable, refused credentials, unknown name..."""


@dataclass(frozen=True)
class KfpSettings:
    """Where the KFP API is and how to authenticate. ``token`` and ``cookies`` are secrets:
    they never appear in ``repr`` or in any message."""

    host: str | None
    namespace: str | None = None
    token: str | None = None
    cookies: str | None = None
    ca_bundle: str | None = None
    verify_ssl: bool = True

    def __repr__(self) -> str:
        return (
            f"KfpSettings(host={self.host!r}, namespace={self.namespace!r},"
            f" token={_hidden(self.token)}, cookies={_hidden(self.cookies)},"
            f" ca_bundle={self.ca_bundle!r}, verify_ssl={self.verify_ssl})"
        )

    @classmethod
    def resolve(
        cls,
        *,
        host: str | None = None,
        namespace: str | None = None,
        token_file: str | None = None,
        cookies: str | None = None,
        ca_bundle: str | None = None,
        verify_ssl: bool = True,
        environ: Mapping[str, str] | None = None,
    ) -> KfpSettings:
        """A flag wins over the environment. The token is read from a file (or the
        environment), never taken as a flag: a command line is visible to every user."""
        env = os.environ if environ is None else environ
        token = _read_token(token_file) if token_file else env.get(ENV_TOKEN) or None
        host = host or env.get(ENV_HOST) or None
        if host is None and not env.get("KUBERNETES_SERVICE_HOST"):
            raise KfpError(
                f"no Kubeflow Pipelines host: give --host or set {ENV_HOST}"
                " (e.g. http://localhost:8080 after"
                " `kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`)"
            )
        return cls(
            host=host,
            namespace=namespace or env.get(ENV_NAMESPACE) or None,
            token=token,
            cookies=cookies or env.get(ENV_COOKIES) or None,
            ca_bundle=ca_bundle or env.get(ENV_CA_BUNDLE) or None,
            verify_ssl=verify_ssl,
        )

    @property
    def where(self) -> str:
        return self.host or "the in-cluster ml-pipeline service"


def _hidden(secret: str | None) -> str:
    return "'<set>'" if secret else "None"


def _read_token(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            token = fh.read().strip()
    except OSError as exc:
        raise KfpError(f"--token-file {path}: cannot read it ({exc.strerror})") from None
    if not token:
        raise KfpError(f"--token-file {path}: the file is empty")
    return token


def connect(settings: KfpSettings) -> kfp.Client:
    """A ``kfp.Client`` for ``settings``; KfpError when the API cannot be reached."""
    try:
        import kfp
    except ImportError:
        raise KfpError(
            "the pipeline commands need the kfp extra: pip install 'kubetune[kfp]'"
        ) from None

    class _Client(kfp.Client):
        # kfp retries healthz 5 times, 5 s apart, on any failure: 25 s to learn that a host
        # is down or a token is refused. One attempt, and the error says why.
        def get_kfp_healthz(self, sleep_duration: int = 5) -> Any:
            return self._healthz_api.healthz_service_get_healthz()

    with kfp_errors(settings), warnings.catch_warnings(), _stdout_to_stderr():
        # "This client only works with Kubeflow Pipeline v2.0.0-beta.2 and later".
        warnings.simplefilter("ignore", FutureWarning)
        return _Client(
            host=settings.host,
            namespace=settings.namespace or "kubeflow",
            existing_token=settings.token,
            cookies=settings.cookies,
            ssl_ca_cert=settings.ca_bundle,
            verify_ssl=None if settings.verify_ssl else False,
        )


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    # kfp.Client prints "Experiment details: <link>" lines on stdout, which must stay
    # reserved for kubetune's own (possibly JSON) output.
    with contextlib.redirect_stdout(sys.stderr):
        yield


@contextlib.contextmanager
def kfp_errors(settings: KfpSettings, *, what: str | None = None) -> Iterator[None]:
    """Turn the kfp client's failures into one-line KfpErrors naming the host (never the
    token: only the status, reason and the server's own message are kept)."""
    import urllib3
    from kfp_server_api.exceptions import ApiException

    where = settings.where
    doing = f" ({what})" if what else ""
    try:
        with _stdout_to_stderr():
            yield
    except ApiException as exc:
        status = int(exc.status or 0)
        if status in (401, 403):
            hint = (
                "the token was refused"
                if settings.token
                else f"no token was given (--token-file or {ENV_TOKEN}; or cookies: {ENV_COOKIES})"
            )
            raise KfpError(
                f"Kubeflow Pipelines at {where} answered {status} {_reason(exc)}{doing}: {hint}"
            ) from None
        if status == 0:  # the SDK's wrapper of TLS errors
            raise KfpError(
                f"cannot reach Kubeflow Pipelines at {where}{doing}: {exc.reason}"
                f" (a private CA: --ca-bundle or {ENV_CA_BUNDLE})"
            ) from None
        message = _server_message(exc)
        raise KfpError(
            f"Kubeflow Pipelines at {where} answered {status} {_reason(exc)}{doing}"
            + (f": {message}" if message else "")
        ) from None
    except urllib3.exceptions.HTTPError as exc:
        cause = getattr(exc, "reason", None) or exc
        raise KfpError(
            f"cannot reach Kubeflow Pipelines at {where}{doing}: {_short(cause)}"
        ) from None


def _reason(exc: Any) -> str:
    return str(exc.reason or "").strip()


def _server_message(exc: Any) -> str:
    """KFP's error body is ``{"error": ..., "message": ..., "code": ...}``; keep its
    message (first line, bounded), not the headers ``str(exc)`` would print."""
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        data = json.loads(body) if body else {}
    except ValueError:
        data = {}
    text = str(data.get("message") or data.get("error") or "") if isinstance(data, dict) else ""
    return _short(text)


def _short(value: object, limit: int = 300) -> str:
    text = str(value).strip().splitlines()[0] if str(value).strip() else ""
    # urllib3 wraps the real cause: "<urllib3.connection.HTTPConnection object at 0x..>: Failed
    # to establish a new connection: [Errno 111] Connection refused" -> the part after ": ".
    if "object at 0x" in text and ">: " in text:
        text = text.split(">: ", 1)[1]
    return text[:limit]
