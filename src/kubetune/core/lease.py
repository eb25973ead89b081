"""One controller per study: a lease stored on the study itself.

The lease is a study system attr (so it works on every optuna storage: journal file,
SQLite, PostgreSQL) naming its holder: a random owner id, host, pid (and the pid's start
time, so a reused pid is not mistaken for the holder), when it was taken and last renewed.
A holder renews it every ``ttl_s / 4`` seconds while it runs and clears it on exit.

A new controller takes the study when there is no lease, when the lease was not renewed for
``ttl_s`` (its holder hung or died elsewhere), or when the holder ran on this host and its
process is gone (SIGKILLed: resuming right away must not wait out the TTL). Otherwise it
refuses with :class:`~kubetune.errors.StudyInUseError`.

optuna storages offer no compare-and-swap, so two controllers starting at once are told
apart by writing, waiting a moment and reading again: the last write wins, and the other
one finds it on its re-read and refuses.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import optuna

from kubetune.core import optuna_compat as compat
from kubetune.core.attrs import LEASE
from kubetune.errors import StudyInUseError

__all__ = ["DEFAULT_TTL_S", "LeaseHolder", "StudyLease", "process_alive", "process_start"]

DEFAULT_TTL_S = 60.0


def process_start(pid: int) -> str | None:
    """When a process started (clock ticks since boot, from /proc); None where unknown."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def process_alive(pid: int, started: str | None = None) -> bool:
    """Whether ``pid`` runs on this host (and is the same process, when ``started`` is known)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return True  # no /proc: the signal test is all there is
    if fields[0] == "Z":
        return False  # a zombie is dead, merely not reaped yet
    return started is None or fields[19] == started


@dataclass(frozen=True)
class LeaseHolder:
    owner: str
    host: str
    pid: int
    pid_start: str | None
    acquired_at: float  # time.time() of the holder
    renewed_at: float
    ttl_s: float

    @classmethod
    def from_attr(cls, value: Any) -> LeaseHolder | None:
        if not isinstance(value, dict):
            return None  # no lease, or released
        try:
            return cls(
                owner=str(value["owner"]),
                host=str(value["host"]),
                pid=int(value["pid"]),
                pid_start=value.get("pid_start"),
                acquired_at=float(value["acquired_at"]),
                renewed_at=float(value["renewed_at"]),
                ttl_s=float(value["ttl_s"]),
            )
        except (KeyError, TypeError, ValueError):
            return None  # unreadable: treated as no lease

    def describe(self) -> str:
        since = datetime.fromtimestamp(self.acquired_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"host {self.host}, pid {self.pid}, since {since}"


class StudyLease:
    """The lease of one study for one controller (this process)."""

    def __init__(
        self,
        study: optuna.Study,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        settle_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.study = study
        self.ttl_s = ttl_s
        self.renew_every_s = ttl_s / 4
        self._settle_s = settle_s
        self._clock = clock
        self._owner = uuid.uuid4().hex
        self._host = socket.gethostname()
        self._pid = os.getpid()
        self._pid_start = process_start(self._pid)
        self._acquired_at = 0.0
        self._renewed_mono = 0.0
        self.held = False

    # --- public --------------------------------------------------------------------------

    def acquire(self) -> None:
        """Take the lease, or raise :class:`StudyInUseError` naming its holder."""
        started = time.monotonic()
        holder = self.current()
        if holder is not None and not self._can_take(holder):
            raise self._in_use(holder)
        self._acquired_at = self._clock()
        self._write()
        # Wait for a controller that read the old lease at the same time as we did to write
        # its own; then whichever write landed last holds the lease.
        time.sleep(self._settle_time(time.monotonic() - started))
        holder = self.current()
        if holder is None:
            raise StudyInUseError(
                f"study '{self.study.study_name}': the controller lease was cleared while"
                " this controller was taking it; another controller is starting or stopping"
            )
        if holder.owner != self._owner:
            raise self._in_use(holder)
        self.held = True
        self._renewed_mono = time.monotonic()

    def keep(self) -> LeaseHolder | None:
        """Renew the lease when due. Returns the holder that took it over, if one did."""
        if not self.held or time.monotonic() - self._renewed_mono < self.renew_every_s:
            return None
        holder = self.current()
        if holder is not None and holder.owner != self._owner:
            self.held = False
            return holder
        self._write()
        self._renewed_mono = time.monotonic()
        return None

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        holder = self.current()
        if holder is None or holder.owner == self._owner:  # never clear a successor's lease
            compat.set_study_system_attr(self.study, LEASE, None)

    def current(self) -> LeaseHolder | None:
        return LeaseHolder.from_attr(compat.study_system_attrs(self.study).get(LEASE))

    # --- helpers -------------------------------------------------------------------------

    def _can_take(self, holder: LeaseHolder) -> bool:
        if holder.owner == self._owner:
            return True
        if self._clock() - holder.renewed_at > holder.ttl_s:
            return True  # not renewed in time: its holder is gone or stuck
        return holder.host == self._host and not process_alive(holder.pid, holder.pid_start)

    def _settle_time(self, round_trip: float) -> float:
        """Long enough for a rival's read-then-write to land: many of our own round trips."""
        if self._settle_s is not None:
            return self._settle_s
        return min(2.0, max(0.1, 10 * round_trip))

    def _write(self) -> None:
        holder = LeaseHolder(
            owner=self._owner,
            host=self._host,
            pid=self._pid,
            pid_start=self._pid_start,
            acquired_at=self._acquired_at,
            renewed_at=self._clock(),
            ttl_s=self.ttl_s,
        )
        compat.set_study_system_attr(self.study, LEASE, asdict(holder))

    def _in_use(self, holder: LeaseHolder) -> StudyInUseError:
        return StudyInUseError(
            f"study '{self.study.study_name}' is run by another controller"
            f" ({holder.describe()}); one controller runs a study at a time. Wait for it to"
            f" finish or stop it; a lease not renewed for {holder.ttl_s:g}s is taken over"
        )


def release_quietly(lease: StudyLease) -> None:
    """Release on the way out of a failing run: the run's own error matters more."""
    with contextlib.suppress(Exception):
        lease.release()
