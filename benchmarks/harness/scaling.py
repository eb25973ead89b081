"""Does the controller's cost per trial grow with the number of trials? On every storage.

For each storage (optuna's in-memory study, kubetune's journal file, SQLite, and PostgreSQL
when ``KUBETUNE_TEST_POSTGRES_URL`` is set), one run of ``max(sizes)`` no-op trials per loop:

* kubetune: ``TuningLoop`` with :class:`kubetune.testing.FakeExecutor` (an in-process
  executor that completes each trial on the next poll), so only the controller is timed;
* optuna: ``study.optimize`` on the same sampler (random, same seed) and storage.

The cost per trial at size ``n`` is the mean over the ``max(10, n // 10)`` trials before the
``n``-th finished: a loop that re-reads the whole study per event shows up as growth.
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
from kubetune.core.storage import journal_storage
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
        yield f"sqlite:///{tmp / uuid.uuid4().hex}.db"
    elif kind == "postgresql":
        url = os.environ[POSTGRES_ENV]
        storage = optuna.storages.RDBStorage(url)
        yield storage
        for summary in optuna.get_all_study_summaries(storage):
            if summary.study_name.startswith("bench-scaling-"):
                optuna.delete_study(study_name=summary.study_name, storage=storage)
        storage.remove_session()
        storage.engine.dispose()
    else:
        raise ValueError(f"storage: unknown kind {kind!r}")


def _study(storage: Any, seed: int) -> optuna.Study:
    return optuna.create_study(
        storage=storage,
        study_name=f"bench-scaling-{uuid.uuid4().hex[:12]}",
        sampler=optuna.samplers.RandomSampler(seed=seed),
    )


class _Stamps:
    """A loop observer that notes when each trial finished."""

    def __init__(self) -> None:
        self.started = 0.0
        self.times: list[float] = []

    def on_start(self, progress: LoopProgress) -> None:
        self.started = time.perf_counter()  # after the lease and the resume read

    def on_trial_finished(self, trial: FrozenTrial, progress: LoopProgress) -> None:
        self.times.append(time.perf_counter())

    def on_stop(self, reason: str, progress: LoopProgress) -> None:
        pass


def _kubetune(storage: Any, n: int, seed: int) -> tuple[float, list[float]]:
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


def _optuna(storage: Any, n: int, seed: int) -> tuple[float, list[float]]:
    def objective(trial: optuna.Trial) -> float:
        for name, p in SPACE.items():
            trial.suggest_float(name, p["low"], p["high"])
        return 0.0

    stamps: list[float] = []
    study = _study(storage, seed)
    started = time.perf_counter()
    study.optimize(
        objective, n_trials=n, callbacks=[lambda s, t: stamps.append(time.perf_counter())]
    )
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


LOOPS: dict[str, Callable[[Any, int, int], tuple[float, list[float]]]] = {
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
        for kind in kinds:
            for loop, fn in LOOPS.items():
                say(f"scaling: {loop} on {kind}, {max(sizes)} no-op trials")
                with _storage(kind, Path(tmp)) as storage:
                    started, stamps = fn(storage, max(sizes), seed)
                costs = per_trial_ms(started, stamps, sizes)
                first, last = costs[min(sizes)], costs[max(sizes)]
                rows.append(
                    {
                        "storage": kind,
                        "loop": loop,
                        "ms_per_trial": {str(n): c for n, c in costs.items()},
                        "growth": last / first if first > 0 else float("nan"),
                    }
                )
    kt = [r["growth"] for r in rows if r["loop"] == "kubetune"]
    return {
        "sizes": list(sizes),
        "storages": list(kinds),
        "postgresql": "postgresql" in kinds,
        "rows": rows,
        "worst_kubetune_growth": max(kt) if kt else float("nan"),
        "median_kubetune_growth": statistics.median(kt) if kt else float("nan"),
    }
