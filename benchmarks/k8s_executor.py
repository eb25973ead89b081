"""The Kubernetes executor against a SIMULATED cluster: controller cost and API requests
per trial as the number of trials grows, and efficiency with a pod start, Job per trial
against warm worker pods (``mode: worker-pool``).

    python benchmarks/k8s_executor.py            # 100 and 1,000 trials; efficiency runs
    python benchmarks/k8s_executor.py --mode worker-pool   # one mode only
    python benchmarks/k8s_executor.py --quick    # 50 and 200 trials (a smoke run)
    python benchmarks/k8s_executor.py --json     # the same numbers as JSON

The cluster is simulated, in a child process so that the controller's CPU time is its own:
the in-process API server (``kubetune.testing.k8s_emulator``) and the simulated kubelet in
its ``simulated`` runtime (no trial process: after the pod start delay the "container"
sleeps the trial time and writes a completed result to the object store; a worker pod's
slots speak the worker protocol over HTTP and sleep the trial time per trial). The
controller is the real :class:`KubernetesExecutor` or :class:`WorkerPoolExecutor` (as many
worker pods as ``--parallel``), reached over HTTP through the real ``kubernetes`` client,
driven by a minimal loop that keeps ``parallel`` trials in flight (no optuna study:
this measures the executor, not the search loop).

Reported per run: API requests per trial (every request the API server received, the
watches included, divided by the trials), controller CPU milliseconds per trial (the
controller process's CPU time: HTTP, watch decoding, bookkeeping), and efficiency = ideal
wall time (trials x trial time / parallel) / measured wall time from the first submit to
the last finished trial (the controller's start-up, about a second, is reported apart).

The efficiency runs are time-compressed (``--compress``, default 50x): a 10 s trial with a
5 s pod start runs as 0.2 s with 0.1 s. The controller's own latencies are not compressed,
so the measured efficiency is a lower bound of the uncompressed one; the table also gives
the bound a pod start alone sets, trial / (trial + start).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from kubetune.core.executor import Executor, FinishedEvent, ReportEvent
from kubetune.core.trial import TrialRequest, TrialStatus
from kubetune.executors.kubernetes.client import connect
from kubetune.executors.kubernetes.executor import KubernetesExecutor
from kubetune.executors.kubernetes.options import KubernetesOptions
from kubetune.executors.kubernetes.pool import WorkerPoolExecutor
from kubetune.storage import path_to_uri

SPEC: dict[str, Any] = {
    "name": "bench-k8s",
    "objective": {"metric": "value", "direction": "minimize"},
    "search_space": {"x": {"type": "float", "low": 0, "high": 1}},
}


def _cluster(conn: Connection, start_delay_s: float, trial_s: float) -> None:
    """Child process: serve the simulated cluster until told to stop; send request counts."""
    from kubetune.testing.k8s_emulator import KubernetesEmulator
    from kubetune.testing.kubelet import SimulatedKubelet

    with (
        KubernetesEmulator() as emulator,
        SimulatedKubelet(
            emulator, start_delay_s=start_delay_s, runtime="simulated", trial_s=trial_s
        ) as kubelet,
    ):
        conn.send(emulator.kubeconfig())
        conn.recv()  # "stop"
        conn.send({"requests": dict(emulator.requests), "pods": kubelet.pods_created})


def run(
    trials: int, parallel: int, start_delay_s: float, trial_s: float, mode: str = "job-per-trial"
) -> dict[str, Any]:
    parent, child = mp.Pipe()
    cluster = mp.get_context("spawn").Process(
        target=_cluster, args=(child, start_delay_s, trial_s), daemon=True
    )
    cluster.start()
    try:
        if not parent.poll(60):
            raise RuntimeError("the simulated cluster did not start within 60 s")
        kubeconfig_text = parent.recv()
        with tempfile.TemporaryDirectory() as tmp:
            kubeconfig = Path(tmp) / "kubeconfig"
            kubeconfig.write_text(kubeconfig_text)
            options = KubernetesOptions.parse(
                {"kubeconfig": str(kubeconfig), "report_host": "127.0.0.1", "mode": mode}
            )
            cpu0, wall0 = time.process_time(), time.perf_counter()
            api, namespace = connect(options)
            kind = WorkerPoolExecutor if mode == "worker-pool" else KubernetesExecutor
            executor = kind(
                options=options,
                api_client=api,
                namespace=namespace,
                experiment=SPEC["name"],
                spec_data=SPEC,
                spec_dir=tmp,
                capacity=parallel,
                trials_uri=path_to_uri(Path(tmp) / "trials"),
            )
            setup = time.perf_counter() - wall0
            with executor:
                started = time.perf_counter()
                completed = _drive(executor, trials, parallel)
                wall = time.perf_counter() - started
            cpu = time.process_time() - cpu0
        parent.send("stop")
        if not parent.poll(60):
            raise RuntimeError("the simulated cluster did not report its request counts")
        counts = parent.recv()
    finally:
        cluster.join(timeout=10)
        if cluster.is_alive():
            cluster.kill()
    requests = counts["requests"]
    ideal = trials * trial_s / parallel
    return {
        "mode": mode,
        "trials": trials,
        "parallel": parallel,
        "pod_start_s": start_delay_s,
        "trial_s": trial_s,
        "completed": completed,
        "wall_s": round(wall, 2),  # first submit to last finished event
        "setup_s": round(setup, 2),  # client, report server (watches start on first submit)
        "api_requests": sum(requests.values()),
        "api_requests_per_trial": round(sum(requests.values()) / trials, 3),
        "requests": requests,
        "controller_cpu_ms_per_trial": round(cpu * 1000 / trials, 2),
        "efficiency": round(ideal / wall, 3),
        "start_bound": round(trial_s / (trial_s + start_delay_s), 3),
    }


def _drive(executor: Executor, trials: int, parallel: int) -> int:
    """Keep ``parallel`` trials in flight until ``trials`` finished; how many completed."""
    submitted = finished = completed = 0
    while finished < trials:
        while submitted < trials and submitted - finished < parallel:
            executor.submit(
                TrialRequest(study=SPEC["name"], number=submitted, params={"x": 0.5}, seed=0)
            )
            submitted += 1
        for event in executor.poll(1.0):
            if isinstance(event, ReportEvent):
                executor.answer(event.number, False)
            elif isinstance(event, FinishedEvent):
                finished += 1
                completed += event.outcome.status is TrialStatus.COMPLETED
    return completed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer trials (a smoke run)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--parallel", type=int, default=20)
    parser.add_argument("--compress", type=float, default=50.0, help="time compression")
    parser.add_argument("--sizes", type=int, nargs="+", help="trials of the scaling runs")
    parser.add_argument(
        "--trial-lengths", type=float, nargs="+", default=[10.0, 60.0],
        help="trial seconds of the efficiency runs (before compression)",
    )  # fmt: skip
    parser.add_argument(
        "--mode", choices=("job-per-trial", "worker-pool", "both"), default="both",
        help="executor mode(s) to measure",
    )  # fmt: skip
    parser.add_argument(
        "--efficiency-trials", type=int, help="trials of each efficiency run (0: none)"
    )
    args = parser.parse_args()
    scale = 1.0 / args.compress
    sizes = args.sizes or ((50, 200) if args.quick else (100, 1000))
    efficiency_trials = args.efficiency_trials
    if efficiency_trials is None:
        efficiency_trials = 40 if args.quick else 200
    rows = []
    modes = ("job-per-trial", "worker-pool") if args.mode == "both" else (args.mode,)
    for mode in modes:
        for trials in sizes:  # scaling: short trials, short start: the controller is the cost
            row = run(trials, args.parallel, start_delay_s=0.05, trial_s=0.1, mode=mode)
            rows.append({"run": "scaling", **row})
    for trial_s in args.trial_lengths if efficiency_trials else ():  # a 5 s pod start, compressed
        for mode in modes:
            row = run(
                efficiency_trials, args.parallel, start_delay_s=5.0 * scale,
                trial_s=trial_s * scale, mode=mode,
            )  # fmt: skip
            name = f"{trial_s:g}s trials, 5s pod start (/{args.compress:g})"
            rows.append({"run": name, **row})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(
        f"{'run':<34} {'mode':<13} {'trials':>6} {'wall s':>7} {'API req/trial':>13}"
        f" {'ctl CPU ms/trial':>16} {'efficiency':>10} {'start bound':>11}"
    )
    for r in rows:
        print(
            f"{r['run']:<34} {r['mode']:<13} {r['trials']:>6} {r['wall_s']:>7}"
            f" {r['api_requests_per_trial']:>13}"
            f" {r['controller_cpu_ms_per_trial']:>16} {r['efficiency']:>10} {r['start_bound']:>11}"
        )


if __name__ == "__main__":
    main()
