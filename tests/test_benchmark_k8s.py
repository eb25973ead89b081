"""The Kubernetes executor benchmark runs against its SIMULATED cluster and its numbers
hold what the executor promises: API requests per trial do not grow with the trials."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "k8s_executor.py"


@pytest.mark.slow
def test_api_requests_per_trial_stay_flat_as_trials_grow() -> None:
    command = [sys.executable, str(SCRIPT), "--json", "--parallel", "5"]
    command += ["--sizes", "15", "60", "--efficiency-trials", "0", "--mode", "job-per-trial"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr
    small, large = json.loads(done.stdout)
    for row in (small, large):
        assert row["completed"] == row["trials"]
        assert row["requests"]["create jobs"] == row["trials"]  # one create per trial
        assert row["requests"]["list jobs"] == row["requests"]["list pods"] == 1
        assert row["controller_cpu_ms_per_trial"] > 0 and 0 < row["efficiency"] <= 1
    # the fixed cost (lists, watches) is spread over more trials: per trial it cannot grow
    assert (small["trials"], large["trials"]) == (15, 60)
    assert large["api_requests_per_trial"] <= small["api_requests_per_trial"]
    assert large["api_requests_per_trial"] < 1.2


@pytest.mark.slow
def test_warm_worker_pods_beat_a_pod_start_per_trial() -> None:
    """With a (compressed) 5 s pod start and 10 s trials, Job per trial cannot beat
    trial / (trial + start); warm worker pods pay the start once per pod, not per trial."""
    command = [sys.executable, str(SCRIPT), "--json", "--parallel", "4", "--sizes", "12"]
    command += ["--efficiency-trials", "24", "--trial-lengths", "10"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr
    rows = {(r["run"], r["mode"]): r for r in json.loads(done.stdout)}
    pool = rows[("scaling", "worker-pool")]
    assert pool["completed"] == pool["trials"] == 12
    assert pool["requests"]["create jobs"] == 4  # one Job per worker pod, none per trial
    job_10s = rows[("10s trials, 5s pod start (/50)", "job-per-trial")]
    pool_10s = rows[("10s trials, 5s pod start (/50)", "worker-pool")]
    assert job_10s["efficiency"] <= job_10s["start_bound"] + 0.02
    assert pool_10s["efficiency"] > job_10s["start_bound"], (pool_10s, job_10s)
