"""Per-trial overhead and efficiency: kubetune's local executor against optuna's loop, Ray
Tune and a kfp.local pipeline, all on no-op trials in the same run; and the efficiency of
fixed-duration trials on 2 workers.

kubetune and optuna are measured by ``benchmarks/overhead.py`` (kubetune's workers warmed
first: their start-up is once per run and reported apart). Ray Tune's ``ray.init`` and
``kfp.local.init`` are once per session and left out too; each tool's own per-trial
machinery (a Ray task per trial, a process per KFP task) is what is timed.
"""

from __future__ import annotations

import logging
import math
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import overhead as seed_overhead  # benchmarks/overhead.py

from harness.modes import Mode

WORKERS = 2


def _ray_per_trial_s(trials: int, workdir: Path) -> float:
    from ray import tune

    from harness.peers import ensure_ray

    ensure_ray()

    def noop(config: dict[str, Any]) -> None:
        tune.report({"loss": 0.0})

    tuner = tune.Tuner(
        noop,
        param_space={"x": tune.uniform(0, 1)},
        tune_config=tune.TuneConfig(
            metric="loss", mode="min", num_samples=trials, max_concurrent_trials=WORKERS
        ),
        run_config=tune.RunConfig(
            name="noop-overhead", storage_path=str(workdir.resolve() / "ray_results"), verbose=0
        ),
    )
    started = time.perf_counter()
    tuner.fit()
    return (time.perf_counter() - started) / trials


def _kfp_per_trial_s(trials: int, workdir: Path) -> float:
    from harness import kfp_local

    for name in ("kfp", "kfp.local"):  # one INFO block per task otherwise
        logging.getLogger(name).setLevel(logging.WARNING)
    return kfp_local.per_trial_s(trials, workdir, parallelism=WORKERS)


#: kubetune's looping pipeline: the slope between this many trials and twice as many, so the
#: fixed tasks (retrieve, final training, evaluation, push) cancel out
PIPELINE_TRIALS = 4


def _looping_pipeline_per_trial_s(trials: int, workdir: Path) -> float:
    """Wall seconds per trial of kubetune's looping pipeline under kfp.local (a tiny
    SGDClassifier-on-iris spec, 2 trials per round; benchmarks/kfp_local.py)."""
    import kfp_local as pipeline_bench  # benchmarks/kfp_local.py

    for name in ("kfp", "kfp.local"):
        logging.getLogger(name).setLevel(logging.WARNING)
    n = PIPELINE_TRIALS
    small, _ = pipeline_bench._kubetune(n, WORKERS, workdir / f"looping-{n}")
    large, _ = pipeline_bench._kubetune(2 * n, WORKERS, workdir / f"looping-{2 * n}")
    return (large - small) / n


def measure(
    mode: Mode, workdir: Path, unavailable: dict[str, str], say: Callable[[str], None] = print
) -> dict[str, Any]:
    say(f"overhead: no-op trials, kubetune vs optuna ({mode.noop_trials} x {mode.noop_repeats})")
    noop = seed_overhead.bench_noop(
        n_trials=mode.noop_trials, repeats=mode.noop_repeats, workers=WORKERS
    )
    peers: dict[str, Any] = {
        "kubetune (local executor, 2 workers)": {"ms_per_trial": noop["kubetune_ms_per_trial"]},
        "optuna study.optimize": {"ms_per_trial": noop["optuna_ms_per_trial"]},
    }
    others: dict[str, Callable[[int, Path], float]] = {
        "Ray Tune (local, 2 concurrent)": _ray_per_trial_s,
        "kfp.local ParallelFor (parallelism 2)": _kfp_per_trial_s,
        "kubetune looping pipeline on kfp.local (2 per round)": _looping_pipeline_per_trial_s,
    }
    for name, fn in others.items():
        needs = "ray-tune" if name.startswith("Ray") else None
        if needs and needs in unavailable:
            peers[name] = {"ms_per_trial": math.nan, "error": unavailable[needs]}
            continue
        if not mode.peer_overhead_trials:
            peers[name] = {"ms_per_trial": math.nan, "error": f"not run in {mode.name} mode"}
            continue
        say(f"overhead: no-op trials through {name} ({mode.peer_overhead_trials})")
        try:
            peers[name] = {"ms_per_trial": fn(mode.peer_overhead_trials, workdir) * 1000}
        except Exception as exc:
            peers[name] = {"ms_per_trial": math.nan, "error": f"{type(exc).__name__}: {exc}"}
            say(traceback.format_exc(limit=3))
    sleeps = []
    for sleep_s, trials in mode.sleep_runs:
        say(f"efficiency: {trials} trials of {sleep_s:g} s on {WORKERS} workers")
        run = seed_overhead.bench_sleep(
            n_trials=trials, sleep_s=sleep_s, repeats=1, workers=WORKERS
        )
        sleeps.append(
            {
                "trial_s": sleep_s,
                "trials": trials,
                "ideal_s": run["ideal_s"],
                "wall_s": run["actual_s"],
                "efficiency": run["efficiency"],
                "overhead_ms_per_trial": (run["actual_s"] - run["ideal_s"]) / trials * 1000,
            }
        )
    return {
        "workers": WORKERS,
        "noop_trials": mode.noop_trials,
        "noop_repeats": mode.noop_repeats,
        "peer_trials": mode.peer_overhead_trials,
        "kubetune_startup_s": noop["worker_startup_s"],
        "peers": peers,
        "overhead_vs_optuna_ms": noop["overhead_ms_per_trial"],
        "sleep": sleeps,
    }
