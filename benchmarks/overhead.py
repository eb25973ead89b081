"""Per-trial overhead of kubetune's local executor, against optuna's own loop.

    python benchmarks/overhead.py            # a table
    python benchmarks/overhead.py --json     # the same numbers as JSON

Two scenarios:

* no-op trials (the objective returns a number at once): kubetune's TuningLoop with a
  LocalExecutor of ``--workers`` processes vs ``study.optimize`` with the same sampler
  (RandomSampler, same seed), the same 4-parameter space and in-memory storage. Reported:
  median ms per trial of each, the difference and the ratio. The executor's workers are
  started and warmed before timing: worker start-up is a once-per-run cost, reported apart.
* sleeping trials (``--sleep`` seconds each): efficiency = ideal / actual wall time, where
  ideal = total trial work / workers (work = the trials' own measured durations).

Targets (DESIGN.md): at most 20 ms/trial over optuna's loop; efficiency at least 95 %.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cloudpickle
import optuna

from kubetune.core.attrs import DURATION
from kubetune.core.loop import TuningLoop
from kubetune.core.space import SearchSpace
from kubetune.core.spec import parse_spec
from kubetune.core.storage import journal_storage
from kubetune.core.termination import MaxTrials
from kubetune.core.trial import Reporter, TrialRequest
from kubetune.executors.local import LocalExecutor

if __name__ != "__main__":  # imported (e.g. by a test): workers cannot import this file
    cloudpickle.register_pickle_by_value(sys.modules[__name__])

SPACE: dict[str, Any] = {
    name: {"type": "float", "low": -5.0, "high": 5.0} for name in ("a", "b", "c", "d")
}
TARGET_OVERHEAD_MS = 20.0
TARGET_EFFICIENCY = 0.95


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


def _noop_trial(request: TrialRequest, reporter: Reporter) -> float:
    return 0.0


def _sleep_trial(seconds: float, request: TrialRequest, reporter: Reporter) -> float:
    time.sleep(seconds)
    return 0.0


def _new_study(seed: int, journal: Path | None = None) -> optuna.Study:
    return optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.RandomSampler(seed=seed),
        storage=journal_storage(journal) if journal is not None else None,
    )


def _run_loop(
    executor: LocalExecutor,
    space: SearchSpace,
    n_trials: int,
    seed: int,
    journal: Path | None = None,
) -> tuple[float, optuna.Study]:
    study = _new_study(seed, journal)
    loop = TuningLoop(
        study,
        space,
        executor,
        stop_conditions=[MaxTrials(n_trials)],
        max_trials=n_trials,
        seed=seed,
    )
    result = loop.run()
    completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(completed) != n_trials:
        raise RuntimeError(f"expected {n_trials} completed trials, got {len(completed)}")
    return result.elapsed_s, study


def _warm_executor(fn: Any, workers: int, space: SearchSpace) -> tuple[LocalExecutor, float]:
    """An executor whose workers have all started and run a trial; and how long that took."""
    start = time.perf_counter()
    executor = LocalExecutor(fn, workers=workers)
    _run_loop(executor, space, 2 * workers, seed=12345)
    return executor, time.perf_counter() - start


def _optuna_loop(n_trials: int, seed: int, journal: Path | None = None) -> float:
    def objective(trial: optuna.Trial) -> float:
        for name in SPACE:
            trial.suggest_float(name, SPACE[name]["low"], SPACE[name]["high"])
        return 0.0

    study = _new_study(seed, journal)
    start = time.perf_counter()
    study.optimize(objective, n_trials=n_trials)
    return time.perf_counter() - start


def bench_noop(
    n_trials: int = 300, repeats: int = 5, workers: int = 2, seed: int = 0, storage: str = "memory"
) -> dict[str, Any]:
    """``storage``: "memory" (optuna's InMemoryStorage) or "journal" (kubetune's journal file,
    what a spec-driven run uses by default; both loops then write to their own file)."""
    if storage not in ("memory", "journal"):
        raise ValueError("storage: memory or journal")
    space = _space()
    kubetune_ms: list[float] = []
    optuna_ms: list[float] = []
    startup_s: list[float] = []
    with tempfile.TemporaryDirectory(prefix="kubetune-bench-") as tmp:
        for rep in range(repeats):
            journals: list[Path | None] = [None, None]
            if storage == "journal":
                journals = [
                    Path(tmp, f"optuna-{rep}.journal"),
                    Path(tmp, f"kubetune-{rep}.journal"),
                ]
            optuna_ms.append(_optuna_loop(n_trials, seed + rep, journals[0]) / n_trials * 1000)
            executor, warmup = _warm_executor(_noop_trial, workers, space)
            with executor:
                elapsed, _ = _run_loop(executor, space, n_trials, seed + rep, journals[1])
            startup_s.append(warmup)
            kubetune_ms.append(elapsed / n_trials * 1000)
    k_med, o_med = statistics.median(kubetune_ms), statistics.median(optuna_ms)
    return {
        "scenario": "noop",
        "storage": storage,
        "trials": n_trials,
        "repeats": repeats,
        "workers": workers,
        "kubetune_ms_per_trial": k_med,
        "optuna_ms_per_trial": o_med,
        "overhead_ms_per_trial": k_med - o_med,
        "ratio": k_med / o_med,
        "kubetune_ms_per_trial_all": kubetune_ms,
        "optuna_ms_per_trial_all": optuna_ms,
        "worker_startup_s": statistics.median(startup_s),
        "target_overhead_ms": TARGET_OVERHEAD_MS,
        "meets_target": k_med - o_med <= TARGET_OVERHEAD_MS,
    }


def bench_sleep(
    n_trials: int = 60, sleep_s: float = 0.05, repeats: int = 5, workers: int = 2, seed: int = 0
) -> dict[str, Any]:
    space = _space()
    fn = functools.partial(_sleep_trial, sleep_s)
    efficiencies: list[float] = []
    actual_s: list[float] = []
    ideal_s: list[float] = []
    executor, _ = _warm_executor(fn, workers, space)
    with executor:
        for rep in range(repeats):
            elapsed, study = _run_loop(executor, space, n_trials, seed + rep)
            work = sum(float(t.user_attrs[DURATION]) for t in study.get_trials(deepcopy=False))
            ideal = work / workers
            actual_s.append(elapsed)
            ideal_s.append(ideal)
            efficiencies.append(ideal / elapsed)
    return {
        "scenario": "sleep",
        "trials": n_trials,
        "sleep_s": sleep_s,
        "repeats": repeats,
        "workers": workers,
        "ideal_s": statistics.median(ideal_s),
        "actual_s": statistics.median(actual_s),
        "efficiency": statistics.median(efficiencies),
        "efficiency_all": efficiencies,
        "target_efficiency": TARGET_EFFICIENCY,
        "meets_target": statistics.median(efficiencies) >= TARGET_EFFICIENCY,
    }


def _noop_lines(noop: dict[str, Any]) -> list[str]:
    ok = {True: "ok", False: "ABOVE TARGET"}
    return [
        f"no-op trials: {noop['trials']} trials x {noop['repeats']} repeats,"
        f" {noop['workers']} workers, RandomSampler, {noop['storage']} storage (medians)",
        f"  {'loop':<28}{'ms/trial':>10}",
        f"  {'optuna study.optimize':<28}{noop['optuna_ms_per_trial']:>10.3f}",
        f"  {'kubetune local executor':<28}{noop['kubetune_ms_per_trial']:>10.3f}",
        f"  {'overhead (difference)':<28}{noop['overhead_ms_per_trial']:>10.3f}"
        f"   target <= {noop['target_overhead_ms']:g} ms: {ok[noop['meets_target']]}",
        f"  {'ratio kubetune / optuna':<28}{noop['ratio']:>10.2f}",
        f"  worker start-up (once per run, not included): {noop['worker_startup_s']:.2f} s",
        "",
    ]


def format_table(
    noop: dict[str, Any], sleep: dict[str, Any], journal: dict[str, Any] | None = None
) -> str:
    ok = {True: "ok", False: "ABOVE TARGET"}
    lines = [
        *_noop_lines(noop),
        *(_noop_lines(journal) if journal is not None else []),
        f"sleeping trials: {sleep['trials']} trials of {sleep['sleep_s']:g} s,"
        f" {sleep['workers']} workers, {sleep['repeats']} repeats (medians)",
        f"  ideal (work / workers) {sleep['ideal_s']:.3f} s, actual {sleep['actual_s']:.3f} s,"
        f" efficiency {sleep['efficiency'] * 100:.1f} %"
        f"   target >= {sleep['target_efficiency'] * 100:g} %: {ok[sleep['meets_target']]}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=300, help="no-op trials per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sleep-trials", type=int, default=60)
    parser.add_argument("--sleep", type=float, default=0.05, help="seconds per sleeping trial")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--journal",
        action="store_true",
        help="also compare both loops on a journal file (fsync per write)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    noop = bench_noop(args.trials, args.repeats, args.workers, args.seed)
    journal = (
        bench_noop(args.trials, args.repeats, args.workers, args.seed, storage="journal")
        if args.journal
        else None
    )
    sleep = bench_sleep(args.sleep_trials, args.sleep, args.repeats, args.workers, args.seed)
    if args.json:
        results = {"noop": noop, "sleep": sleep}
        if journal is not None:
            results["noop_journal"] = journal
        print(json.dumps(results, indent=2))
    else:
        print(format_table(noop, sleep, journal))
    return 0


if __name__ == "__main__":
    sys.exit(main())
