"""Does the controller's cost per trial stay flat as a study grows? kubetune vs optuna's loop.

    python benchmarks/loop_scaling.py                  # 10,000 trials: a table
    python benchmarks/loop_scaling.py --quick          # 2,000 trials
    python benchmarks/loop_scaling.py --json out.json  # also write the figures as JSON

For ``--trials`` no-op trials (RandomSampler, the same 4-float space, the same seed) the
script times the controller per trial over the first and the last ``--window`` trials:

* **kubetune**: ``TuningLoop`` with :class:`kubetune.testing.FakeExecutor`, an in-process
  executor that completes every trial on the next poll, so only the controller's own work
  is timed (ask, suggest, submit, tell, trial attrs, stop conditions, progress), with no
  worker or IPC noise; the run's start-up (taking the study lease, reading the study once)
  is not a per-trial cost and is left out;
* **optuna**: ``study.optimize`` on the same sampler and storage, the yardstick;

on optuna's in-memory storage and on a journal file (kubetune's, fsync per write), both
loops in the same run, ``--repeats`` times; medians are reported with the ratios last/first
(flat is 1) and kubetune/optuna. ``--local-trials`` adds kubetune's real local executor
(2 worker processes) for fewer trials: the cost a no-op trial sees end to end.

Target (DESIGN.md): within about 1 ms of optuna's loop per trial, flat to 10,000 trials.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle
import optuna
from optuna.trial import FrozenTrial

from kubetune.core.events import LoopProgress
from kubetune.core.executor import Executor
from kubetune.core.loop import TuningLoop
from kubetune.core.space import SearchSpace
from kubetune.core.spec import parse_spec
from kubetune.core.storage import journal_storage
from kubetune.core.termination import MaxTrials
from kubetune.core.trial import Reporter, TrialRequest
from kubetune.testing.fake_executor import FakeExecutor

if __name__ != "__main__":  # imported (e.g. by a test): workers cannot import this file
    cloudpickle.register_pickle_by_value(sys.modules[__name__])

SPACE: dict[str, Any] = {
    name: {"type": "float", "low": -5.0, "high": 5.0} for name in ("a", "b", "c", "d")
}
TARGET_DIFF_MS = 1.0
STORAGES = ("memory", "journal")


def _space() -> SearchSpace:
    spec = parse_spec(
        {
            "name": "bench",
            "objective": {"metric": "value", "direction": "minimize"},
            "search_space": SPACE,
        },
        source="benchmark",
    )
    return spec.space


def _new_study(seed: int, journal: Path | None) -> optuna.Study:
    return optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.RandomSampler(seed=seed),
        storage=journal_storage(journal) if journal is not None else None,
    )


class _Stamps:
    """A loop observer that notes when each trial finished."""

    def __init__(self) -> None:
        self.started = 0.0
        self.times: list[float] = []

    def on_start(self, progress: LoopProgress) -> None:
        # after the lease and the resume read: once per run, not per trial
        self.started = time.perf_counter()

    def on_trial_finished(self, trial: FrozenTrial, progress: LoopProgress) -> None:
        self.times.append(time.perf_counter())

    def on_stop(self, reason: str, progress: LoopProgress) -> None:
        pass


def _windows(start: float, stamps: list[float], window: int) -> tuple[float, float]:
    """ms per trial over the first and the last ``window`` trials."""
    if len(stamps) < 2 * window:
        raise RuntimeError(f"{len(stamps)} trials finished, need at least {2 * window}")
    first = (stamps[window - 1] - start) / window
    last = (stamps[-1] - stamps[-window - 1]) / window
    return first * 1000, last * 1000


def time_kubetune(
    n_trials: int, window: int, seed: int, journal: Path | None, executor: Executor
) -> tuple[float, float]:
    study = _new_study(seed, journal)
    stamps = _Stamps()
    loop = TuningLoop(
        study,
        _space(),
        executor,
        stop_conditions=[MaxTrials(n_trials)],
        max_trials=n_trials,
        seed=seed,
        observer=stamps,
    )
    loop.run()
    return _windows(stamps.started, stamps.times, window)


def time_optuna(n_trials: int, window: int, seed: int, journal: Path | None) -> tuple[float, float]:
    def objective(trial: optuna.Trial) -> float:
        for name, param in SPACE.items():
            trial.suggest_float(name, param["low"], param["high"])
        return 0.0

    stamps: list[float] = []
    study = _new_study(seed, journal)
    start = time.perf_counter()
    study.optimize(
        objective, n_trials=n_trials, callbacks=[lambda s, t: stamps.append(time.perf_counter())]
    )
    return _windows(start, stamps, window)


def _lines(path: Path) -> int:
    with path.open("rb") as journal:
        return sum(1 for _ in journal)


def _noop_trial(request: TrialRequest, reporter: Reporter) -> float:
    return 0.0


def _summary(
    loop: str, storage: str, runs: list[tuple[float, float]], **extra: Any
) -> dict[str, Any]:
    first = statistics.median(r[0] for r in runs)
    last = statistics.median(r[1] for r in runs)
    return {
        "loop": loop,
        "storage": storage,
        **extra,
        "first_ms_per_trial": first,
        "last_ms_per_trial": last,
        "last_over_first": last / first,
        "first_ms_all": [r[0] for r in runs],
        "last_ms_all": [r[1] for r in runs],
    }


def bench(
    n_trials: int = 10_000,
    window: int = 1_000,
    repeats: int = 3,
    seed: int = 0,
    storages: tuple[str, ...] = STORAGES,
    local_trials: int = 0,
    local_window: int | None = None,
    workers: int = 2,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The figures as a dict (what ``--json`` writes)."""
    say = progress or (lambda _: None)
    results: list[dict[str, Any]] = []
    comparisons: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="kubetune-bench-") as tmp:
        for storage in storages:
            k_runs: list[tuple[float, float]] = []
            o_runs: list[tuple[float, float]] = []
            for rep in range(repeats):
                journals: list[Path | None] = [None, None]
                if storage == "journal":
                    journals = [Path(tmp, f"optuna-{rep}.journal"), Path(tmp, f"kt-{rep}.journal")]
                # alternate which loop runs first, so neither always gets the warmer machine
                order = ("optuna", "kubetune") if rep % 2 == 0 else ("kubetune", "optuna")
                for which in order:
                    say(f"{storage}: {which}, repeat {rep + 1}/{repeats}")
                    if which == "optuna":
                        o_runs.append(time_optuna(n_trials, window, seed + rep, journals[0]))
                    else:
                        executor = FakeExecutor(capacity=workers)
                        k_runs.append(
                            time_kubetune(n_trials, window, seed + rep, journals[1], executor)
                        )
            optuna_row = _summary("optuna study.optimize", storage, o_runs)
            kubetune_row = _summary("kubetune, in-process executor", storage, k_runs)
            if storage == "journal":
                # fsynced journal writes per trial: the noise-free part of the journal figures
                optuna_row["writes_per_trial"] = _lines(Path(tmp, "optuna-0.journal")) / n_trials
                kubetune_row["writes_per_trial"] = _lines(Path(tmp, "kt-0.journal")) / n_trials
            results += [optuna_row, kubetune_row]
            comparisons[storage] = {
                "first_diff_ms": kubetune_row["first_ms_per_trial"]
                - optuna_row["first_ms_per_trial"],
                "last_diff_ms": kubetune_row["last_ms_per_trial"] - optuna_row["last_ms_per_trial"],
                "first_ratio": kubetune_row["first_ms_per_trial"]
                / optuna_row["first_ms_per_trial"],
                "last_ratio": kubetune_row["last_ms_per_trial"] / optuna_row["last_ms_per_trial"],
            }
        local: dict[str, Any] | None = None
        if local_trials:
            from kubetune.executors.local import LocalExecutor

            lw = local_window or max(1, local_trials // 10)
            runs = []
            for rep in range(repeats):
                say(f"memory: kubetune local executor, repeat {rep + 1}/{repeats}")
                with LocalExecutor(_noop_trial, workers=workers) as executor:
                    # start the workers first: their start-up is once per run, not per trial
                    time_kubetune(2 * workers, 1, seed + rep, None, executor)
                    runs.append(time_kubetune(local_trials, lw, seed + rep, None, executor))
            local = _summary(
                f"kubetune, local executor ({workers} workers)",
                "memory",
                runs,
                trials=local_trials,
                window=lw,
            )
    worst_last_diff = max(c["last_diff_ms"] for c in comparisons.values())
    worst_flat = max(r["last_over_first"] for r in results if r["loop"].startswith("kubetune"))
    return {
        "trials": n_trials,
        "window": window,
        "repeats": repeats,
        "workers": workers,
        "sampler": "RandomSampler",
        "results": results,
        "comparisons": comparisons,
        "local_executor": local,
        "target_diff_ms": TARGET_DIFF_MS,
        "meets_target": worst_last_diff <= TARGET_DIFF_MS,
        "worst_kubetune_last_over_first": worst_flat,
    }


def format_table(data: dict[str, Any]) -> str:
    w = data["window"]
    lines = [
        f"loop scaling: {data['trials']} no-op trials, RandomSampler, medians of"
        f" {data['repeats']} repeats; ms per trial over the first and the last {w}",
        f"  {'storage':<9}{'loop':<34}{'first':>9}{'last':>9}{'last/first':>12}",
    ]
    for row in data["results"]:
        writes = row.get("writes_per_trial")
        lines.append(
            f"  {row['storage']:<9}{row['loop']:<34}{row['first_ms_per_trial']:>9.3f}"
            f"{row['last_ms_per_trial']:>9.3f}{row['last_over_first']:>12.2f}"
            + (f"   ({writes:.2f} journal writes/trial)" if writes else "")
        )
    for storage, c in data["comparisons"].items():
        lines.append(
            f"  {storage:<9}{'kubetune - optuna (ms)':<34}{c['first_diff_ms']:>9.3f}"
            f"{c['last_diff_ms']:>9.3f}"
        )
        lines.append(
            f"  {storage:<9}{'kubetune / optuna':<34}{c['first_ratio']:>9.2f}"
            f"{c['last_ratio']:>9.2f}"
        )
    local = data.get("local_executor")
    if local:
        lines.append(
            f"  {local['storage']:<9}{local['loop']:<34}{local['first_ms_per_trial']:>9.3f}"
            f"{local['last_ms_per_trial']:>9.3f}{local['last_over_first']:>12.2f}"
            f"   ({local['trials']} trials, windows of {local['window']})"
        )
    verdict = "ok" if data["meets_target"] else "ABOVE TARGET"
    lines.append(
        f"  target: kubetune within {data['target_diff_ms']:g} ms of optuna over the last"
        f" {w} trials: {verdict}; worst kubetune last/first"
        f" {data['worst_kubetune_last_over_first']:.2f}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=1_000, help="trials per timed window")
    parser.add_argument("--quick", action="store_true", help="2,000 trials, windows of 500")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="trials in flight")
    parser.add_argument(
        "--storage", choices=[*STORAGES, "both"], default="both", help="which storages"
    )
    parser.add_argument(
        "--local-trials",
        type=int,
        default=2_000,
        help="trials through the real local executor (0: skip)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the figures here")
    args = parser.parse_args(argv)
    if args.quick:
        args.trials, args.window = 2_000, 500
        args.local_trials = min(args.local_trials, 500)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storages = STORAGES if args.storage == "both" else (args.storage,)
    data = bench(
        args.trials,
        args.window,
        args.repeats,
        args.seed,
        storages,
        local_trials=args.local_trials,
        workers=args.workers,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(format_table(data))
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
