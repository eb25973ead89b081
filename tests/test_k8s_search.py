"""Whole searches with ``executor: {kind: kubernetes}`` on a SIMULATED cluster.

The API server is the in-process emulator (``kubetune.testing.k8s_emulator``), reached by
the real ``kubernetes`` client through a kubeconfig; the simulated kubelet
(``kubetune.testing.kubelet``) runs every Job's ``kubetune trial`` command as a local
process. Every trial is a Job; Hyperband prunes across pods (reports travel over HTTP);
a lost node is retried as an infrastructure failure, a preemption is not counted; and a
controller SIGKILLed while its Jobs run is restarted and adopts them.
"""

from __future__ import annotations

import collections
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from k8s_helpers import simulated_cluster, trial_of
from kubetune.cli.main import main
from kubetune.core.storage import journal_storage
from kubetune.testing.kubelet import Fault

pytestmark = pytest.mark.slow  # each trial is a `kubetune trial` process

TRAINER = """\
import time

import numpy as np


class Majority:
    def __init__(self, label):
        self.label = label

    def predict(self, X):
        return np.full(len(X), self.label)


def train(params, data, budget, reporter, seed, final):
    # The learning curve is x * step: low x is hopeless from the first step on.
    for step in range(1, (budget or 1) + 1):
        if not final:
            reporter.report(step, params["x"] * step / 9)
    time.sleep(params.get("hold", 0.0) if not final else 0.0)
    return Majority(int(np.bincount(data.y_train).argmax()))
"""

SPEC = """\
name: {name}
objective: {{metric: val_accuracy}}
data: {{source: "sklearn:iris"}}
trainer: {{kind: custom, function: "k8s_trainer:train"}}
search_space:
  x: {{type: float, low: 0.0, high: 1.0}}
{extra_space}
strategy: {{name: random}}
{fidelity}
limits: {{max_trials: {trials}, parallel: 2, trial_timeout: 2m}}
executor:
  kind: kubernetes
{executor_extra}  kubeconfig: {kubeconfig}
  report_host: 127.0.0.1
  report_port: {port}
seed: 3
"""


def _write_spec(tmp_path: Path, kubeconfig: Path, **fields: Any) -> Path:
    (tmp_path / "k8s_trainer.py").write_text(TRAINER)
    values = {"extra_space": "", "fidelity": "", "port": 0, "executor_extra": "", **fields}
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.format(kubeconfig=kubeconfig, **values))
    return path


def _trials(tmp_path: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    storage = journal_storage(tmp_path / "kubetune-runs" / name / "study.journal")
    return optuna.load_study(study_name=name, storage=storage).trials


def test_a_whole_search_runs_every_trial_as_a_job_and_prunes_across_pods(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def faults(job: dict[str, Any]) -> Fault | None:
        number, attempt = trial_of(job)
        if (number, attempt) == (1, 1):
            return Fault(node_loss_after_s=0.2)  # an infrastructure failure: retried
        if (number, attempt) == (2, 1):
            return Fault(preempt_after_s=0.2)  # a disruption: the Job starts a new pod
        return None

    with simulated_cluster(tmp_path, faults=faults) as (emulator, kubelet, kubeconfig):
        spec = _write_spec(
            tmp_path,
            kubeconfig,
            name="k8s-hb",
            trials=8,
            fidelity="fidelity: {param: steps, min: 1, max: 9, reduction_factor: 3,"
            " scheduler: hyperband}",
        )
        monkeypatch.chdir(tmp_path)
        assert main(["run", str(spec), "--model-repo", "repo"]) == 0, capsys.readouterr().err
        jobs_left = {j["metadata"]["name"] for j in emulator.list_objects("jobs", "default")}
        seen = list(kubelet.jobs_seen)
        requests = dict(emulator.requests)

    trials = _trials(tmp_path, "k8s-hb")
    by_state = collections.Counter(t.state for t in trials)
    assert by_state[TrialState.COMPLETE] + by_state[TrialState.PRUNED] == 8, by_state
    assert by_state[TrialState.PRUNED], "Hyperband pruned nothing: reports did not reach it"
    # trial 1 lost its node: failed as infrastructure, and its config ran again
    (lost,) = [t for t in trials if t.number == 1]
    assert lost.state == TrialState.FAIL and lost.user_attrs["failure"] == "infrastructure"
    retry = [t for t in trials if t.user_attrs.get("kubetune:retry_of") == 1]
    assert len(retry) == 1 and retry[0].params == lost.params
    assert retry[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    # trial 2 was preempted: not a failure, no second attempt
    (preempted,) = [t for t in trials if t.number == 2]
    assert preempted.state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert not [t for t in trials if t.user_attrs.get("kubetune:retry_of") == 2]
    # one Job per trial attempt, never two; pruned trials' Jobs were deleted
    assert len(seen) == len(set(seen)) == len(trials)
    pruned_jobs = {
        name for name in seen if int(name.split("-t")[-1].split("-")[0]) in
        {t.number for t in trials if t.state == TrialState.PRUNED}
    }  # fmt: skip
    assert pruned_jobs and not pruned_jobs & jobs_left
    # API requests per trial are constant: a create, plus a delete for each pruned trial
    assert requests["create jobs"] == len(trials)
    assert requests.get("delete jobs", 0) == len(pruned_jobs)
    assert requests["list jobs"] == 1 and requests["list pods"] == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_controller_sigkilled_while_jobs_run_adopts_them_on_restart(tmp_path: Path) -> None:
    """No duplicate Job, no lost trial: the restarted controller finds its Jobs by name,
    follows them to the end and reads their results; none of them is retried."""
    with simulated_cluster(tmp_path) as (emulator, kubelet, kubeconfig):
        spec = _write_spec(
            tmp_path,
            kubeconfig,
            name="k8s-adopt",
            trials=4,
            extra_space="  hold: [4.0]",
            port=_free_port(),  # the adopted pods report to the same address
        )
        command = [sys.executable, "-m", "kubetune", "run", str(spec), "--model-repo", "repo"]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        first = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            deadline = time.monotonic() + 60
            while len(_running_pods(emulator)) < 2:
                assert first.poll() is None, first.stderr.read() if first.stderr else ""
                assert time.monotonic() < deadline, "no two trial pods ran"
                time.sleep(0.1)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
        running_at_kill = {p["metadata"]["labels"]["job-name"] for p in _running_pods(emulator)}
        second = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
        )
        assert second.returncode == 0, second.stderr
        seen = list(kubelet.jobs_seen)

    assert len(running_at_kill) == 2
    assert len(seen) == len(set(seen)) == 4, seen  # every Job created once
    assert running_at_kill <= set(seen)
    trials = _trials(tmp_path, "k8s-adopt")
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4, [
        (t.number, t.state, t.user_attrs.get("message")) for t in trials
    ]
    assert not [t for t in trials if "kubetune:retry_of" in t.user_attrs]


def _running_pods(emulator: Any) -> list[dict[str, Any]]:
    return [
        p for p in emulator.list_objects("pods", "default") if p["status"].get("phase") == "Running"
    ]
