"""Many trial processes writing one study: straight to PostgreSQL vs through the gRPC proxy.

    KUBETUNE_TEST_POSTGRES_URL=postgresql+psycopg2://... python benchmarks/shared_study.py
    python benchmarks/shared_study.py --writers 8 --trials 20 --json

N writer processes (as trial pods would) each ask, set a param, report 3 intermediate
values and tell ``--trials`` trials of one fresh study, all starting together. Reported per
route: the wall time from the common start to the last writer's end, trials written per
second, and whether every trial arrived exactly once. The proxy is ``kubetune study-proxy``
on a loopback port in front of the same database.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import optuna

from kubetune.core.storage import grpc_proxy_storage, open_storage

WRITER = """
import sys, time
from pathlib import Path
import optuna
from kubetune.core.storage import open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)
url, name, sync = sys.argv[1], sys.argv[2], sys.argv[5]
writer, n = int(sys.argv[3]), int(sys.argv[4])
study = optuna.load_study(study_name=name, storage=open_storage(url),
                          sampler=optuna.samplers.RandomSampler(seed=writer))
Path(sync, f"ready-{writer}").touch()
while not Path(sync, "go").exists():
    time.sleep(0.005)
for _ in range(n):
    trial = study.ask()
    x = trial.suggest_float("x", -1.0, 1.0)
    for step in range(3):
        trial.report(x + step, step)
    study.tell(trial, x * x)
"""


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}


def run_route(url: str, writers: int, trials: int) -> dict[str, Any]:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    optuna.create_study(study_name=name, storage=open_storage(url))
    with tempfile.TemporaryDirectory() as sync:
        script = Path(sync, "writer.py")
        script.write_text(WRITER)
        procs = [
            subprocess.Popen(
                [sys.executable, str(script), url, name, str(w), str(trials), sync], env=_env()
            )
            for w in range(writers)
        ]
        while len(list(Path(sync).glob("ready-*"))) < writers:
            if any(p.poll() not in (None, 0) for p in procs):
                raise SystemExit("a writer failed to start")
            time.sleep(0.01)
        start = time.perf_counter()
        Path(sync, "go").touch()
        codes = [p.wait() for p in procs]
        wall = time.perf_counter() - start
    stored = optuna.load_study(study_name=name, storage=open_storage(url)).trials
    total = writers * trials
    return {
        "wall_s": round(wall, 2),
        "trials_per_s": round(total / wall, 1),
        "exactly_once": codes == [0] * writers
        and sorted(t.number for t in stored) == list(range(total)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--trials", type=int, default=20, help="trials per writer")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    database = os.environ.get("KUBETUNE_TEST_POSTGRES_URL")
    if not database:
        raise SystemExit("set KUBETUNE_TEST_POSTGRES_URL to a PostgreSQL database URL")
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proxy = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubetune",
            "study-proxy",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env={**_env(), "KUBETUNE_STORAGE": database},
        stderr=subprocess.DEVNULL,
    )
    try:
        proxy_url = f"grpc://127.0.0.1:{port}"
        grpc_proxy_storage(proxy_url, wait_s=60)
        results = {
            "postgresql": run_route(database, args.writers, args.trials),
            "grpc-proxy": run_route(proxy_url, args.writers, args.trials),
        }
    finally:
        proxy.terminate()
        proxy.wait(timeout=30)
    if args.json:
        print(json.dumps({"writers": args.writers, "trials_per_writer": args.trials, **results}))
        return
    print(f"{args.writers} writers x {args.trials} trials, 3 reports each")
    print(f"{'route':<12} {'wall s':>8} {'trials/s':>9}  exactly once")
    for route, r in results.items():
        print(f"{route:<12} {r['wall_s']:>8} {r['trials_per_s']:>9}  {r['exactly_once']}")


if __name__ == "__main__":
    main()
