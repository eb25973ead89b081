"""A database study storage (PostgreSQL, MySQL, SQLite) that rides out lost connections.

optuna's ``RDBStorage`` keeps a SQLAlchemy connection pool. When the database server
restarts, or an administrator or a proxy cuts the controller's connections, every pooled
connection is dead and the next storage call fails: the run stops with a traceback. Here

* the pool tests a connection before handing it out (``pool_pre_ping``), so connections cut
  while the controller waited are replaced silently, and
* a storage call that fails because the connection dropped under it, or because the server
  is restarting, is retried with backoff (6 retries over about 31 s; set
  ``KUBETUNE_STORAGE_RETRIES`` to change how many) before the error goes up.

Other errors (a wrong password, a missing database, bad data) are raised at once. A write
whose connection dropped after the server committed it but before the answer arrived is
sent again; optuna's writes are idempotent except creating a trial, and that window is a
few microseconds wide.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from optuna.storages import BaseStorage, RDBStorage

from kubetune.errors import StorageError

__all__ = ["ReconnectingRDBStorage", "is_transient_db_error"]

_log = logging.getLogger(__name__)
RETRIES_VAR = "KUBETUNE_STORAGE_RETRIES"
# Waits between attempts, doubling: 6 retries wait about 31 s, long enough for a restart.
_FIRST_WAIT_S, _MAX_WAIT_S, _DEFAULT_RETRIES = 0.5, 16.0, 6
# Messages of connection failures that a restarting server gives (libpq and MySQL clients);
# SQLAlchemy itself flags connections that dropped mid-use (``connection_invalidated``).
_TRANSIENT = (
    "connection refused",
    "could not connect",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "terminating connection",
    "server closed the connection",
    "connection already closed",
    "lost connection",
    "gone away",
    "database is locked",  # SQLite: another writer holds the lock
)

F = TypeVar("F", bound=Callable[..., Any])


def is_transient_db_error(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) is a dropped or refused database connection."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, DBAPIError) and seen.connection_invalidated:
            return True
        if isinstance(seen, OperationalError):
            text = str(seen.orig if seen.orig is not None else seen).lower()
            return any(words in text for words in _TRANSIENT)
        seen = seen.__cause__ or seen.__context__
    return False


def backoff_from_env() -> tuple[float, ...]:
    """The waits between attempts, ``KUBETUNE_STORAGE_RETRIES`` of them (default 6)."""
    raw = os.environ.get(RETRIES_VAR, "").strip() or str(_DEFAULT_RETRIES)
    if not raw.isdigit() or int(raw) > 20:
        raise StorageError(f"{RETRIES_VAR} must be a number from 0 to 20, got {raw!r}")
    return tuple(min(_FIRST_WAIT_S * 2**n, _MAX_WAIT_S) for n in range(int(raw)))


_in_call = threading.local()


def _retrying(method: F) -> F:
    @functools.wraps(method)
    def call(self: ReconnectingRDBStorage, *args: Any, **kwargs: Any) -> Any:
        if getattr(_in_call, "active", False):  # the outer call retries the whole thing
            return method(self, *args, **kwargs)
        _in_call.active = True
        try:
            for wait in (*self.backoff_s, None):
                try:
                    return method(self, *args, **kwargs)
                except Exception as exc:
                    if wait is None or not is_transient_db_error(exc):
                        raise
                    # the URL is never logged: it may hold a password
                    _log.warning(
                        "study storage: the database connection was lost (%s); retrying in %gs",
                        type(exc.__cause__ or exc).__name__,
                        wait,
                    )
                    time.sleep(wait)
        finally:
            _in_call.active = False

    return call  # type: ignore[return-value]


class ReconnectingRDBStorage(RDBStorage):
    """``RDBStorage`` whose pool pre-pings and whose storage calls retry transient errors."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        self.backoff_s = backoff_from_env()
        engine_kwargs = {"pool_pre_ping": True, **kwargs.pop("engine_kwargs", {})}
        # creating the tables also needs the server: retried like every other call
        _retrying(RDBStorage.__init__)(self, url, engine_kwargs=engine_kwargs, **kwargs)


# optuna's cache in front of an RDBStorage calls these private methods, not the public ones
# (optuna 4 and 5): a connection cut during one of them must be retried like any other call;
# tests/test_reliability_postgres.py fails if one goes away. (``_create_new_trial`` is the
# one write that is not idempotent; see the module docstring.)
PRIVATE_CALLS = (
    "_get_trials",
    "_set_trial_param",
    "_create_new_trial",
    "_get_best_trial_id",
    "_get_stale_trial_ids",
)
# Every public storage call, as BaseStorage declares them (reads and writes alike).
_CALLS = [n for n, m in vars(BaseStorage).items() if callable(m) and not n.startswith("_")]
for _name in (*_CALLS, *PRIVATE_CALLS):
    setattr(ReconnectingRDBStorage, _name, _retrying(getattr(RDBStorage, _name)))
del _name
