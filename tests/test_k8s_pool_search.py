"""Whole searches in ``executor: {kind: kubernetes, mode: worker-pool}`` on a SIMULATED
cluster (the in-process API emulator behind the real ``kubernetes`` client, and the
simulated kubelet running each worker Job's ``kubetune worker`` as a local process).

Every trial runs in one of two warm worker pods (no Job per trial); Hyperband prunes
across them; a controller SIGKILLed while its workers run trials is restarted, adopts the
pool (no new worker Job) and the trials in flight (none is retried or lost).
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from optuna.trial import TrialState

from k8s_helpers import simulated_cluster
from kubetune.cli.main import main
from test_k8s_search import _free_port, _trials
from test_k8s_search import _write_spec as write_spec

pytestmark = pytest.mark.slow  # worker pods are local interpreters


def _write_spec(tmp_path: Path, kubeconfig: Path, **fields: Any) -> Path:
    """test_k8s_search's spec, with the executor in worker-pool mode."""
    return write_spec(tmp_path, kubeconfig, executor_extra="  mode: worker-pool\n", **fields)


def test_a_whole_search_in_worker_pool_mode_prunes_across_worker_pods(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with simulated_cluster(tmp_path) as (emulator, kubelet, kubeconfig):
        spec = _write_spec(
            tmp_path,
            kubeconfig,
            name="pool-hb",
            trials=10,
            fidelity="fidelity: {param: steps, min: 1, max: 9, reduction_factor: 3,"
            " scheduler: hyperband}",
        )
        monkeypatch.chdir(tmp_path)
        assert main(["run", str(spec), "--model-repo", "repo"]) == 0, capsys.readouterr().err
        seen = list(kubelet.jobs_seen)
        pods = kubelet.pods_created
        left = emulator.list_objects("jobs", "default")
        requests = dict(emulator.requests)

    trials = _trials(tmp_path, "pool-hb")
    by_state = collections.Counter(t.state for t in trials)
    assert by_state[TrialState.COMPLETE] + by_state[TrialState.PRUNED] == 10, by_state
    assert by_state[TrialState.PRUNED], "Hyperband pruned nothing: reports did not reach it"
    # two warm worker pods served every trial: no Job per trial, no pod per trial
    assert sorted(seen) == ["kt-pool-hb-w0-g1", "kt-pool-hb-w1-g1"], seen
    assert pods == 2 and requests["create jobs"] == 2
    assert left == []  # the run's end deleted its workers


def test_a_controller_sigkilled_while_workers_run_adopts_the_pool_on_restart(
    tmp_path: Path,
) -> None:
    """No new worker Job, no lost or repeated trial: the restarted controller finds its
    worker Jobs by their labels and the trials they run by their assignment records."""
    with simulated_cluster(tmp_path) as (_, kubelet, kubeconfig):
        spec = _write_spec(
            tmp_path,
            kubeconfig,
            name="pool-adopt",
            trials=4,
            extra_space="  hold: [4.0]",
            port=_free_port(),  # the adopted workers call the same address
        )
        command = [sys.executable, "-m", "kubetune", "run", str(spec), "--model-repo", "repo"]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        first = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        trials_dir = tmp_path / "kubetune-runs" / "pool-adopt" / "trials"
        try:
            deadline = time.monotonic() + 90
            while len(list(trials_dir.glob("*/worker.json"))) < 2:
                assert first.poll() is None, first.stderr.read() if first.stderr else ""
                assert time.monotonic() < deadline, "no two trials were handed to workers"
                time.sleep(0.1)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
        # handed out and not finished when the controller died: these must be adopted
        in_flight = [
            p.parent
            for p in trials_dir.glob("*/worker.json")
            if not (p.parent / "result.json").exists()
        ]
        assert in_flight, "no trial was in flight at the kill"
        second = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
        )
        assert second.returncode == 0, second.stderr
        seen = list(kubelet.jobs_seen)
        pods = kubelet.pods_created

    assert sorted(seen) == ["kt-pool-adopt-w0-g1", "kt-pool-adopt-w1-g1"], seen
    assert pods == 2
    trials = _trials(tmp_path, "pool-adopt")
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4, [
        (t.number, t.state, t.user_attrs.get("message")) for t in trials
    ]
    assert not [t for t in trials if "kubetune:retry_of" in t.user_attrs]
    assert all((folder / "result.json").exists() for folder in in_flight)
