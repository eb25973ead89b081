"""Reliability: the Kubernetes API unreachable for a while (issue 14.3), on a SIMULATED cluster.

The API server is the in-process emulator, the pods are run by the simulated kubelet (each a
local ``kubetune trial`` process), and the outage is SIMULATED by a loopback TCP proxy in
front of the emulator (:class:`kubetune.testing.tcp_proxy.TcpProxy`): cut, new connections
are refused and open watches end; the emulator, its Jobs and their pods carry on.

Shown, in Job-per-trial mode: a search survives an outage of several seconds (the watches
back off and list again, the Jobs that ran and finished meanwhile are followed to the end,
none is created twice, no trial fails or is retried); a Job created while the API is down is
created once it is back; an outage longer than ``executor.api_outage_s`` ends the run with
one clear error line, not a hang, leaving its Jobs running, and the next run adopts them.

And in worker-pool mode (``mode: worker-pool``): trials go on being handed out and recorded
during the outage (workers talk to the controller, not to the API), no worker Job is created
twice or replaced, nothing is lost or retried; past ``api_outage_s`` the run ends with one
error line, its worker pods finish their trials and the next run adopts them (no new worker
Job, no trial run twice); a worker Job create answered 503 is tried again.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from k8s_helpers import make_executor, simulated_cluster
from kubetune.core.executor import FinishedEvent
from kubetune.core.storage import journal_storage
from kubetune.core.trial import TrialRequest, TrialStatus
from kubetune.errors import SpecError
from kubetune.executors.kubernetes.options import KubernetesOptions
from kubetune.testing.k8s_emulator import KubernetesEmulator
from kubetune.testing.kubelet import SimulatedKubelet
from kubetune.testing.tcp_proxy import TcpProxy
from kubetune.testing.trial_functions import SCRIPTED

pytestmark = pytest.mark.reliability

TRAINER = """\
import time

import numpy as np


class Majority:
    def __init__(self, label):
        self.label = label

    def predict(self, X):
        return np.full(len(X), self.label)


def train(params, data, budget, reporter, seed, final):
    if not final:
        time.sleep(params["hold"])
    return Majority(int(np.bincount(data.y_train).argmax()))
"""

SPEC = """\
name: {name}
objective: {{metric: val_accuracy}}
data: {{source: "sklearn:iris"}}
trainer: {{kind: custom, function: "outage_trainer:train"}}
search_space:
  x: {{type: float, low: 0.0, high: 1.0}}
  hold: [{hold}]
strategy: {{name: random}}
limits: {{max_trials: {trials}, parallel: 2, trial_timeout: 2m}}
executor:
  kind: kubernetes
  kubeconfig: {kubeconfig}
  report_host: 127.0.0.1
  report_port: {port}
  api_outage_s: {outage_bound}
  mode: {mode}
seed: 5
"""


@contextmanager
def cluster_behind_proxy(
    tmp_path: Path,
) -> Iterator[tuple[KubernetesEmulator, SimulatedKubelet, TcpProxy, Path]]:
    """The simulated cluster, reached only through a proxy that the test can cut."""
    with (
        simulated_cluster(tmp_path) as (emulator, kubelet, _),
        TcpProxy(_address(emulator)) as proxy,
    ):
        kubeconfig = tmp_path / "kubeconfig-proxied"
        kubeconfig.write_text(emulator.kubeconfig().replace(emulator.url, proxy.url))
        yield emulator, kubelet, proxy, kubeconfig


def _address(emulator: KubernetesEmulator) -> tuple[str, int]:
    host, port = emulator.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _assert_each_completed_once(trials: list[Any], count: int) -> None:
    """``count`` trials, all COMPLETE, none a retry of another (nothing ran twice)."""
    assert [t.state for t in trials] == [TrialState.COMPLETE] * count, [
        (t.number, t.state, t.user_attrs.get("message")) for t in trials
    ]
    assert not [t for t in trials if "kubetune:retry_of" in t.user_attrs]


def _the_outage_error(run: subprocess.Popen[str], err: str, ended_after: float, proxy: Any) -> str:
    """The run ended soon after api_outage_s with one ``error:`` line naming the bound and
    the API server, and no traceback; returns that line."""
    assert run.returncode != 0
    assert ended_after < 30, "the run did not stop soon after api_outage_s"
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "executor.api_outage_s (2s" in lines[0] and proxy.url in lines[0], lines[0]
    return lines[0]


def _spec(tmp_path: Path, kubeconfig: Path, name: str, **fields: Any) -> list[str]:
    (tmp_path / "outage_trainer.py").write_text(TRAINER)
    values = {
        "hold": 2.0,
        "trials": 4,
        "outage_bound": 60,
        "port": _free_port(),  # fixed: the workers of a first run call its successor there
        "mode": "job-per-trial",
        **fields,
    }
    (tmp_path / "spec.yaml").write_text(SPEC.format(name=name, kubeconfig=kubeconfig, **values))
    return [sys.executable, "-m", "kubetune", "run", "spec.yaml", "--model-repo", "repo"]


def _start(command: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    return subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_running_pods(
    emulator: KubernetesEmulator, process: subprocess.Popen[str], n: int
) -> None:
    deadline = time.monotonic() + 60
    while len(_running_pods(emulator)) < n:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"no {n} trial pods ran"
        time.sleep(0.05)


def _running_pods(emulator: KubernetesEmulator) -> list[dict[str, Any]]:
    pods = emulator.list_objects("pods", "default")
    return [p for p in pods if p["status"].get("phase") == "Running"]


def _finished_jobs(emulator: KubernetesEmulator) -> set[str]:
    return {
        j["metadata"]["name"]
        for j in emulator.list_objects("jobs", "default")
        if any(c.get("type") == "Complete" for c in j.get("status", {}).get("conditions", []))
    }


def _trials(tmp_path: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    storage = journal_storage(tmp_path / "kubetune-runs" / name / "study.journal")
    return optuna.load_study(study_name=name, storage=storage).trials


@pytest.mark.slow  # trial pods are `kubetune trial` processes
def _cut_until_the_run_ends(
    run: subprocess.Popen[str], proxy: TcpProxy, wait_busy: Callable[[], object]
) -> tuple[str, float]:
    """Once ``wait_busy()`` returns, cut the API and wait for ``run`` to give up: its
    stderr and the seconds it took after the cut (``run`` is killed if it hangs)."""
    try:
        wait_busy()
        proxy.cut()
        cut_at = time.monotonic()
        _, err = run.communicate(timeout=60)
        return err, time.monotonic() - cut_at
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()


def test_a_search_survives_an_api_outage_of_several_seconds(tmp_path: Path) -> None:
    with cluster_behind_proxy(tmp_path) as (emulator, kubelet, proxy, kubeconfig):
        command = _spec(tmp_path, kubeconfig, "outage-short", trials=4, hold=1.5)
        run = _start(command, tmp_path)
        try:
            _wait_running_pods(emulator, run, 2)
            proxy.cut()
            cut_at = time.monotonic()
            # the two running trials end while the API is cut off: their Jobs complete unseen
            while len(_finished_jobs(emulator)) < 2 and time.monotonic() - cut_at < 30:
                time.sleep(0.1)
            time.sleep(max(0.0, 6.0 - (time.monotonic() - cut_at)))  # an outage of ~6 s
            finished_during_outage = _finished_jobs(emulator)
            still_running = run.poll() is None
            proxy.restore()
            _, err = run.communicate(timeout=120)
        finally:
            if run.poll() is None:
                run.kill()
                run.communicate()
        seen = list(kubelet.jobs_seen)

    assert still_running, "the run ended during the outage"
    assert run.returncode == 0, err
    assert len(finished_during_outage) == 2  # not a vacuous cut: Jobs ended unseen
    assert "watching jobs failed" in err  # the executor did see the outage, and waited
    assert len(seen) == len(set(seen)) == 4, seen  # every Job created once
    trials = _trials(tmp_path, "outage-short")
    _assert_each_completed_once(trials, 4)


@pytest.mark.slow  # trial pods are `kubetune trial` processes
def test_a_job_submitted_while_the_api_is_down_is_created_once_it_is_back(
    tmp_path: Path,
) -> None:
    with cluster_behind_proxy(tmp_path) as (emulator, kubelet, proxy, kubeconfig):
        executor = make_executor(kubeconfig, tmp_path, capacity=1, function=SCRIPTED)
        try:
            request = TrialRequest(study="s", number=0, params={"x": 0.5}, seed=0, deadline_s=60)
            executor._watch("s")  # the watches start while the API answers
            proxy.cut()
            executor.submit(request)  # cannot reach the API: waits, no failure
            events = executor.poll(timeout=1.5)
            assert events == [] and emulator.list_objects("jobs", "default") == []
            proxy.restore()
            deadline = time.monotonic() + 60
            while not events and time.monotonic() < deadline:
                events = executor.poll(timeout=0.5)
        finally:
            executor.close()
        seen = list(kubelet.jobs_seen)
    assert len(seen) == 1
    (event,) = events
    assert isinstance(event, FinishedEvent)
    assert event.outcome.status is TrialStatus.COMPLETED, event.outcome


@pytest.mark.slow  # trial pods are `kubetune trial` processes
def test_an_outage_past_api_outage_s_ends_the_run_clearly_and_the_next_run_adopts(
    tmp_path: Path,
) -> None:
    with cluster_behind_proxy(tmp_path) as (emulator, kubelet, proxy, kubeconfig):
        command = _spec(tmp_path, kubeconfig, "outage-long", trials=2, hold=6.0, outage_bound=2)
        first = _start(command, tmp_path)
        err, ended_after = _cut_until_the_run_ends(
            first, proxy, lambda: _wait_running_pods(emulator, first, 2)
        )
        jobs_after_error = {j["metadata"]["name"] for j in emulator.list_objects("jobs", "default")}
        proxy.restore()
        second = _start(command, tmp_path)
        _, err2 = second.communicate(timeout=120)
        seen = list(kubelet.jobs_seen)

    _the_outage_error(first, err, ended_after, proxy)
    assert len(jobs_after_error) == 2  # left running, for the next run to adopt
    assert second.returncode == 0, err2
    assert len(seen) == len(set(seen)) == 2, seen  # adopted, not created again
    trials = _trials(tmp_path, "outage-long")
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2, [
        (t.number, t.state, t.user_attrs.get("message")) for t in trials
    ]


@pytest.mark.slow  # trial pods are `kubetune trial` processes
def _refuse_two_creates(emulator: KubernetesEmulator) -> list[str]:
    """Answer the next two creates 503, as a restarting API server does; the list fills with
    the name of every object the executor asked to create."""
    refusals = [(503, "ServiceUnavailable", "the API server is shutting down")] * 2
    asked: list[str] = []

    def admission(resource: str, obj: dict[str, Any]) -> tuple[int, str, str] | None:
        asked.append(obj["metadata"]["name"])
        return refusals.pop() if refusals else None

    emulator.admission = admission
    return asked


def _run_one_trial(executor: Any) -> list[Any]:
    """Submit trial 0 and poll until its first events (or 60 s)."""
    executor.submit(TrialRequest(study="s", number=0, params={}, seed=0, deadline_s=60))
    events: list[Any] = []
    deadline = time.monotonic() + 60
    while not events and time.monotonic() < deadline:
        events = executor.poll(timeout=0.5)
    return events


def test_a_create_answered_503_by_a_restarting_api_server_is_tried_again(tmp_path: Path) -> None:
    with simulated_cluster(tmp_path) as (emulator, kubelet, kubeconfig):
        asked = _refuse_two_creates(emulator)
        with make_executor(kubeconfig, tmp_path, capacity=1, function=SCRIPTED) as executor:
            events = _run_one_trial(executor)
        seen = list(kubelet.jobs_seen)
    assert len(asked) == 3 and len(set(asked)) == 1  # refused twice, then admitted
    assert len(seen) == 1
    (event,) = events
    assert event.outcome.status is TrialStatus.COMPLETED, event.outcome


@pytest.mark.parametrize("value", [0, -5, "soon", True])
def test_api_outage_s_must_be_a_positive_number(value: object) -> None:
    with pytest.raises(SpecError, match=r"executor\.api_outage_s: must be a positive number"):
        KubernetesOptions.parse({"api_outage_s": value})
    assert KubernetesOptions.parse({"api_outage_s": 12}).api_outage_s == 12.0
    assert KubernetesOptions.parse({}).api_outage_s == 300.0  # the documented default


# --- worker-pool mode ----------------------------------------------------------------------


def _trial_results(tmp_path: Path, name: str) -> set[str]:
    """The trial folders with a result (each written by a worker as its trial ended)."""
    folder = tmp_path / "kubetune-runs" / name / "trials"
    return {p.parent.name for p in folder.glob("*/result.json")}


def _wait_assigned(tmp_path: Path, name: str, process: subprocess.Popen[str], n: int) -> None:
    """Until ``n`` trials were handed to workers (each leaves an assignment record)."""
    folder = tmp_path / "kubetune-runs" / name / "trials"
    deadline = time.monotonic() + 90
    while len(list(folder.glob("*/worker.json"))) < n:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"no {n} trials were handed to workers"
        time.sleep(0.05)


@pytest.mark.slow  # worker pods are `kubetune worker` processes
def test_a_worker_pool_search_goes_on_through_an_api_outage(tmp_path: Path) -> None:
    with cluster_behind_proxy(tmp_path) as (emulator, kubelet, proxy, kubeconfig):
        name = "pool-outage-short"
        command = _spec(tmp_path, kubeconfig, name, trials=10, hold=1.5, mode="worker-pool")
        run = _start(command, tmp_path)
        try:
            _wait_assigned(tmp_path, name, run, 2)
            proxy.cut()
            cut_at = time.monotonic()
            results_at_cut = _trial_results(tmp_path, name)
            # an outage of at least 3 s, over until two trials have finished during it (and
            # before the search ends: its end deletes the workers, which needs the API)
            while time.monotonic() - cut_at < 30 and (
                time.monotonic() - cut_at < 3.0
                or len(_trial_results(tmp_path, name) - results_at_cut) < 2
            ):
                time.sleep(0.05)
            results_during_outage = _trial_results(tmp_path, name) - results_at_cut
            still_running = run.poll() is None
            proxy.restore()
            outage_s = time.monotonic() - cut_at
            _, err = run.communicate(timeout=120)
        finally:
            if run.poll() is None:
                run.kill()
                run.communicate()
        seen = list(kubelet.jobs_seen)
        left = emulator.list_objects("jobs", "default")

    assert still_running, f"the run ended during the outage: {err}"
    assert run.returncode == 0, err
    assert outage_s >= 3.0
    # not a vacuous cut: the API was seen gone, and trials ran to the end meanwhile
    assert "watching worker jobs failed" in err
    assert len(results_during_outage) >= 2, results_during_outage
    # the pool was neither replaced nor doubled: one generation of two worker Jobs
    assert sorted(seen) == [f"kt-{name}-w0-g1", f"kt-{name}-w1-g1"], seen
    assert left == []  # and the run's end deleted them once the API was back
    trials = _trials(tmp_path, name)
    _assert_each_completed_once(trials, 10)


@pytest.mark.slow  # worker pods are `kubetune worker` processes
def test_a_worker_pool_outage_past_api_outage_s_ends_the_run_and_the_next_run_adopts(
    tmp_path: Path,
) -> None:
    with cluster_behind_proxy(tmp_path) as (emulator, kubelet, proxy, kubeconfig):
        name = "pool-outage-long"
        command = _spec(
            tmp_path, kubeconfig, name, trials=2, hold=6.0, outage_bound=2, mode="worker-pool"
        )
        first = _start(command, tmp_path)
        err, ended_after = _cut_until_the_run_ends(
            first, proxy, lambda: _wait_assigned(tmp_path, name, first, 2)
        )
        jobs_after_error = {j["metadata"]["name"] for j in emulator.list_objects("jobs", "default")}
        proxy.restore()
        second = _start(command, tmp_path)
        _, err2 = second.communicate(timeout=120)
        seen = list(kubelet.jobs_seen)

    error = _the_outage_error(first, err, ended_after, proxy)
    assert "worker pods finish the trials they run" in error, error
    # the workers were left running (not told to stop), for the next run to adopt
    assert jobs_after_error == {f"kt-{name}-w0-g1", f"kt-{name}-w1-g1"}, jobs_after_error
    assert second.returncode == 0, err2
    assert sorted(seen) == sorted(jobs_after_error), seen  # adopted, not created again
    trials = _trials(tmp_path, name)
    _assert_each_completed_once(trials, 2)


@pytest.mark.slow  # the worker pod is a `kubetune worker` process
def test_a_worker_job_create_answered_503_is_tried_again(tmp_path: Path) -> None:
    from test_k8s_pool import make_pool

    with simulated_cluster(tmp_path) as (emulator, kubelet, kubeconfig):
        asked = _refuse_two_creates(emulator)
        pool = make_pool(kubeconfig, tmp_path, capacity=1)
        try:
            events = _run_one_trial(pool)
        finally:
            pool.close()
        seen = list(kubelet.jobs_seen)
    # refused twice, then admitted under the same name: no generation was skipped
    assert asked == ["kt-conformance-s-w0-g1"] * 3, asked
    assert seen == ["kt-conformance-s-w0-g1"]
    (event,) = events
    assert event.outcome.status is TrialStatus.COMPLETED, event.outcome
