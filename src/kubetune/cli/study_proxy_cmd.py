"""``kubetune study-proxy``: serve a study database to many pods through optuna's gRPC
storage proxy.

Hundreds of trial pods each holding a PostgreSQL connection pool can exhaust the server's
connections; pointed at one proxy (``storage: grpc://kubetune-study-proxy:13000``) they share
its few connections and its cache of finished trials. The proxy speaks plain gRPC without
TLS or authentication: keep it inside the cluster, behind the NetworkPolicy of the manifests.
"""

from __future__ import annotations

import os
import sys

from kubetune.cli.settings import ENV_STORAGE, first_set
from kubetune.core.storage import GRPC_SCHEME, database_storage, redact_url
from kubetune.errors import SpecError

__all__ = ["run_study_proxy"]


def run_study_proxy(storage: str | None, host: str, port: int) -> int:
    """Serve until killed (SIGTERM from Kubernetes ends it; the database keeps every write)."""
    url = first_set(storage, ENV_STORAGE, os.environ)
    if url is None:
        raise SpecError(f"study-proxy: give --storage or set ${ENV_STORAGE} to a database URL")
    if url.startswith(GRPC_SCHEME) or "://" not in url:
        # optuna's proxy serves database storages only (not journal files, not itself)
        raise SpecError(
            "study-proxy: the storage must be a database URL such as"
            f" postgresql+psycopg2://USER:PASSWORD@HOST/DB, not {redact_url(url)!r}"
        )
    import optuna
    from optuna.storages import get_storage, run_grpc_proxy_server

    # get_storage adds optuna's cache in front of the database, as its docs advise;
    # database_storage turns an unreachable database or a wrong password into one error line
    backend = get_storage(database_storage(url))
    print(
        f"kubetune study-proxy: serving {redact_url(url)} on {host}:{port}",
        file=sys.stderr,
        flush=True,
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run_grpc_proxy_server(backend, host=host, port=port)
    return 0
