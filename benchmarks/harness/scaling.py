"""Does the controller's cost per trial grow with the number of trials? On every storage.

For each storage (optuna's in-memory study, kubetune's journal file, SQLite, and PostgreSQL
when ``KUBETUNE_TEST_POSTGRES_URL`` is set), one run of ``max(sizes)`` no-op trials per loop:

* kubetune: ``TuningLoop`` with :class:`kubetune.testing.FakeExecutor` (an in-process
  executor that completes each trial on the next poll), so only the controller is timed;
* optuna: ``study.optimize`` on the same sampler (random, same seed) and storage.

Both loops use the storage kubetune opens for that kind (``core/storage.py``: the journal
file and optuna's database cache with kubetune's WAITING-trial index, the database behind
it reconnecting), so "optuna" here is optuna's loop on kubetune's storage; optuna's own
storages are measured by ``tests/test_waiting_index.py`` only for the same answers.

The cost per trial at size ``n`` is the mean over the ``max(10, n // 10)`` trials before the
``n``-th finished: a loop that re-reads the whole study per event shows up as growth. It is
measured twice: in wall time (what a user waits, fsync and database round trips included, but
also whatever else the machine is doing) and in the controller process's CPU time (its own
work: what re-reading a growing study would cost, and far less sensitive to a shared
machine's load). The verdict reads CPU time; both are reported.

The study files go to ``tempfile``'s folder (``TMPDIR``): on a disk, every journal append and
SQLite commit waits for an fsync (milliseconds, varying tenfold with the host's load), a
constant per trial that hides growth; a run on tmpfs (``TMPDIR=/dev/shm``) shows the
controller's own cost. The report names the file system used.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from kubetune.core.events import LoopProgress
from kubetune.core.loop import TuningLoop
from kubetune.core.spec import parse_spec
from kubetune.core.storage import database_storage, journal_storage
from kubetune.core.termination import MaxTrials
from kubetune.testing.fake_executor import FakeExecutor

POSTGRES_ENV = "KUBETUNE_TEST_POSTGRES_URL"
SPACE: dict[str, Any] = {n: {"type": "float", "low": -5.0, "high": 5.0} for n in "abcd"}


def storages() -> list[str]:
    found = ["memory", "journal", "sqlite"]
    if os.environ.get(POSTGRES_ENV):
        found.append("postgresql")
    return found


@contextmanager
def _storage(kind: str, tmp: Path) -> Iterator[Any]:
    """An optuna storage of ``kind`` for one study (a PostgreSQL study is deleted after)."""
    if kind == "memory":
        yield None
    elif kind == "journal":
        yield journal_storage(tmp / f"{uuid.uuid4().hex}.journal")
    elif kind == "sqlite":
        yield database_storage(f"sqlite:///{tmp / uuid.uuid4().hex}.db")
    elif kind == "postgresql":
        storage = database_storage(os.environ[POSTGRES_ENV])
        yield storage
        for summary in optuna.get_all_study_summaries(storage):
            if summary.study_name.startswith("bench-scaling-"):
                optuna.delete_study(study_name=summary.study_name, storage=storage)
    else:
        raise ValueError(f"storage: unknown kind {kind!r}")


def _study(storage: Any, seed: int) -> optuna.Study:
    return optuna.create_study(
        storage=storage,
        study_name=f"bench-scaling-{uuid.uuid4().hex[:12]}",
        sampler=optuna.samplers.RandomSampler(seed=seed),
    )


Stamp = tuple[float, float]  # (wall clock, this process's CPU time), in seconds


def _stamp() -> Stamp:
    return time.perf_counter(), time.process_time()


class _Stamps:
    """A loop observer that notes when each trial finished."""

    def __init__(self) -> None:
        self.started: Stamp = (0.0, 0.0)
        self.times: list[Stamp] = []

    def on_start(self, progress: LoopProgress) -> None:
        self.started = _stamp()  # after the lease and the resume read

    def on_trial_finished(self, trial: FrozenTrial, progress: LoopProgress) -> None:
        self.times.append(_stamp())

    def on_stop(self, reason: str, progress: LoopProgress) -> None:
        pass


def _kubetune(storage: Any, n: int, seed: int) -> tuple[Stamp, list[Stamp]]:
    space = parse_spec(
        {
            "name": "bench",
            "objective": {"metric": "value", "direction": "minimize"},
            "search_space": SPACE,
        },
        source="benchmark",
    ).space
    stamps = _Stamps()
    TuningLoop(
        _study(storage, seed),
        space,
        FakeExecutor(capacity=2),
        stop_conditions=[MaxTrials(n)],
        max_trials=n,
        seed=seed,
        observer=stamps,
    ).run()
    return stamps.started, stamps.times


def _optuna(storage: Any, n: int, seed: int) -> tuple[Stamp, list[Stamp]]:
    def objective(trial: optuna.Trial) -> float:
        for name, p in SPACE.items():
            trial.suggest_float(name, p["low"], p["high"])
        return 0.0

    stamps: list[Stamp] = []
    study = _study(storage, seed)
    started = _stamp()
    study.optimize(objective, n_trials=n, callbacks=[lambda s, t: stamps.append(_stamp())])
    return started, stamps


def per_trial_ms(started: float, stamps: list[float], sizes: tuple[int, ...]) -> dict[int, float]:
    """ms per trial over the window of trials just before each size."""
    out: dict[int, float] = {}
    for n in sizes:
        if n > len(stamps):
            raise ValueError(f"{len(stamps)} trials finished, fewer than {n}")
        window = max(10, n // 10) if n > 10 else n
        start = stamps[n - window - 1] if n - window - 1 >= 0 else started
        out[n] = (stamps[n - 1] - start) / window * 1000
    return out


def filesystem(path: Path) -> str:
    """The file system type of ``path`` (from /proc/mounts; "unknown" elsewhere)."""
    try:
        mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return "unknown"
    best, kind = "", "unknown"
    for fields in mounts:
        if len(fields) >= 3 and str(path).startswith(fields[1]) and len(fields[1]) > len(best):
            best, kind = fields[1], fields[2]
    return kind


LOOPS: dict[str, Callable[[Any, int, int], tuple[Stamp, list[Stamp]]]] = {
    "kubetune": _kubetune,
    "optuna": _optuna,
}


def measure(
    sizes: tuple[int, ...],
    kinds: tuple[str, ...] | None = None,
    seed: int = 0,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """``kinds``: the storages to measure (default: every one found)."""
    kinds = tuple(kinds or storages())
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="kubetune-bench-") as tmp:
        files_on = filesystem(Path(tmp).resolve())
        for kind in kinds:
            for loop, fn in LOOPS.items():
                say(f"scaling: {loop} on {kind}, {max(sizes)} no-op trials")
                with _storage(kind, Path(tmp)) as storage:
                    started, stamps = fn(storage, max(sizes), seed)
                wall = per_trial_ms(started[0], [s[0] for s in stamps], sizes)
                cpu = per_trial_ms(started[1], [s[1] for s in stamps], sizes)
                rows.append(
                    {
                        "storage": kind,
                        "loop": loop,
                        "ms_per_trial": {str(n): c for n, c in wall.items()},
                        "growth": _growth(wall, sizes),
                        "cpu_ms_per_trial": {str(n): c for n, c in cpu.items()},
                        "cpu_growth": _growth(cpu, sizes),
                    }
                )
    kt = [r["cpu_growth"] for r in rows if r["loop"] == "kubetune"]
    return {
        "sizes": list(sizes),
        "storages": list(kinds),
        "postgresql": "postgresql" in kinds,
        "files_on": files_on,
        "rows": rows,
        "worst_kubetune_growth": max(kt) if kt else float("nan"),
        "median_kubetune_growth": statistics.median(kt) if kt else float("nan"),
    }


def _growth(costs: dict[int, float], sizes: tuple[int, ...]) -> float:
    first, last = costs[min(sizes)], costs[max(sizes)]
    return last / first if first > 0 else float("nan")
