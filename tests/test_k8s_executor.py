"""The Kubernetes executor against a SIMULATED cluster: the in-process API emulator
(``kubetune.testing.k8s_emulator``) reached through the real ``kubernetes`` client, and a
simulated kubelet that runs each Job's ``kubetune trial`` command as a local process.

The executor passes the executor conformance suite there, and keeps what only a cluster
asks of it: a preempted pod is not the trial's failure, a lost node is an infrastructure
failure, an invalid config fails its Job at once, a pod that cannot be scheduled or pulled
is reported with its reason, a Job deleted by hand fails its trial, and the watch survives
a ``410 Gone`` with API requests per trial staying constant.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from k8s_helpers import make_executor, simulated_cluster, trial_of
from kubetune.core.executor import Executor, FinishedEvent
from kubetune.core.trial import TrialFailure, TrialStatus
from kubetune.errors import SpecError
from kubetune.testing.executors import (
    ExecutorConformance,
    MakeExecutor,
    only_outcome,
    request,
    run_all,
)
from kubetune.testing.kubelet import Fault
from kubetune.testing.trial_functions import SCRIPTED

pytestmark = pytest.mark.slow  # every trial is a `kubetune trial` process (interpreter start-up)


class TestKubernetesExecutorOnSimulatedCluster(ExecutorConformance):
    @pytest.fixture
    def make_executor(self, tmp_path: Path) -> Iterator[MakeExecutor]:
        with simulated_cluster(tmp_path) as (_, _, kubeconfig):

            def make(capacity: int) -> Executor:
                return make_executor(kubeconfig, tmp_path, capacity, function=SCRIPTED)

            yield make


def _jobs(emulator: Any) -> list[dict[str, Any]]:
    return emulator.list_objects("jobs", "default")


@pytest.mark.reliability  # part of the suite: pytest -m reliability
def test_preempted_pod_is_replaced_and_not_counted(tmp_path: Path) -> None:
    """podFailurePolicy Ignore on DisruptionTarget: the Job starts a new pod; the trial
    completes in attempt 1, not charged with a failure."""
    preempt = Fault(preempt_after_s=0.5)
    with simulated_cluster(tmp_path, faults=lambda job: preempt) as (emulator, kubelet, kc):
        with make_executor(kc, tmp_path, 1, function=SCRIPTED) as executor:
            finished, _ = run_all(executor, [request(0, x=0.4, sleep=2.0)])
        outcome = only_outcome(finished, 0)
        assert outcome.status is TrialStatus.COMPLETED, outcome.message
        assert outcome.value == 0.4
        assert kubelet.pods_created == 2  # the preempted one and its replacement
        assert [trial_of(j) for j in _jobs(emulator)] == [(0, 1)]


@pytest.mark.reliability  # part of the suite: pytest -m reliability
def test_lost_node_is_an_infrastructure_failure(tmp_path: Path) -> None:
    lost = Fault(node_loss_after_s=0.5)
    with (
        simulated_cluster(tmp_path, faults=lambda job: lost) as (_, _, kc),
        make_executor(kc, tmp_path, 1, function=SCRIPTED) as executor,
    ):
        finished, _ = run_all(executor, [request(0, sleep=5.0)])
    outcome = only_outcome(finished, 0)
    assert outcome.failure is TrialFailure.INFRASTRUCTURE and outcome.failure.retryable
    assert "NodeLost" in outcome.message


@pytest.mark.reliability  # part of the suite: pytest -m reliability
def test_an_oom_killed_pod_is_an_infrastructure_failure_that_says_so(tmp_path: Path) -> None:
    """The container runtime's reason (OOMKilled) reaches the trial's failure message, not
    only the log tail that FallbackToLogsOnError puts in the termination message."""
    oom = Fault(oom_kill_after_log="epoch 1")
    with (
        simulated_cluster(tmp_path, faults=lambda job: oom) as (_, _, kc),
        make_executor(kc, tmp_path, 1, function=SCRIPTED) as executor,
    ):
        finished, _ = run_all(executor, [request(0, sleep=60.0, say="epoch 1: loss 0.7")])
    outcome = only_outcome(finished, 0)
    assert outcome.failure is TrialFailure.INFRASTRUCTURE and outcome.failure.retryable
    message = outcome.message
    assert "OOMKilled" in message and "exit code 137" in message, message
    assert "epoch 1: loss 0.7" in message  # and the log tail, as before


@pytest.mark.reliability  # part of the suite: pytest -m reliability
def test_invalid_config_fails_the_job_at_once_by_pod_failure_policy(tmp_path: Path) -> None:
    with simulated_cluster(tmp_path) as (emulator, _, kc):
        with make_executor(kc, tmp_path, 1, function=SCRIPTED) as executor:
            finished, _ = run_all(executor, [request(0, action="invalid")])
        outcome = only_outcome(finished, 0)
        assert outcome.failure is TrialFailure.INVALID_CONFIG and not outcome.failure.retryable
        (job,) = _jobs(emulator)
        (condition,) = job["status"]["conditions"]
        assert (condition["type"], condition["reason"]) == ("Failed", "PodFailurePolicy")


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (
            Fault(unschedulable="0/3 nodes are available: 3 Insufficient nvidia.com/gpu."),
            "Insufficient nvidia.com/gpu",
        ),
        (Fault(image_pull_error=True), "ImagePullBackOff"),
    ],
)
def test_a_pod_that_cannot_run_is_reported_with_its_reason(
    tmp_path: Path, fault: Fault, expected: str
) -> None:
    with simulated_cluster(tmp_path, faults=lambda job: fault) as (emulator, _, kc):
        with make_executor(kc, tmp_path, 1, function=SCRIPTED, pending_timeout_s=1.0) as executor:
            started = time.monotonic()
            finished, _ = run_all(executor, [request(0)], timeout=20)
            waited = time.monotonic() - started
        outcome = only_outcome(finished, 0)
        assert outcome.failure is TrialFailure.INFRASTRUCTURE, outcome
        assert expected in outcome.message and "within 1s" in outcome.message, outcome.message
        assert 1.0 <= waited < 10
        assert _jobs(emulator) == [] and emulator.list_objects("pods", "default") == []  # deleted
        assert emulator.requests["list events"] == 1  # asked once, for the message


@pytest.mark.reliability  # part of the suite: pytest -m reliability
def test_a_job_deleted_by_hand_fails_its_trial_as_infrastructure(tmp_path: Path) -> None:
    with (
        simulated_cluster(tmp_path) as (emulator, _, kc),
        make_executor(kc, tmp_path, 1, function=SCRIPTED) as executor,
    ):
        executor.submit(request(0, sleep=30))
        while not _jobs(emulator):
            time.sleep(0.05)
        time.sleep(0.5)
        emulator.delete("jobs", "default", _jobs(emulator)[0]["metadata"]["name"], "Background")
        finished: dict[int, list[FinishedEvent]] = {}
        deadline = time.monotonic() + 10
        while not finished:
            assert time.monotonic() < deadline
            for event in executor.poll(0.2):
                if isinstance(event, FinishedEvent):
                    finished.setdefault(event.number, []).append(event)
    outcome = only_outcome(finished, 0)
    assert outcome.failure is TrialFailure.INFRASTRUCTURE
    assert "disappeared" in outcome.message


def test_watch_survives_410_and_api_requests_per_trial_stay_constant(tmp_path: Path) -> None:
    """Relisting after the watch history expired (410 Gone) loses no trial's end, and the
    API requests grow by one create per trial, not with the number of Jobs or polls."""
    with simulated_cluster(tmp_path) as (emulator, _, kc):
        with make_executor(kc, tmp_path, 4, function=SCRIPTED) as executor:
            finished, _ = run_all(executor, [request(n, x=n / 10) for n in range(4)])
            emulator.expire_history()  # the open watches end; resuming them answers 410
            more, _ = run_all(executor, [request(n, x=n / 10, sleep=0.5) for n in range(4, 8)])
            emulator.break_watches()
            last, _ = run_all(executor, [request(n, x=n / 10) for n in range(8, 12)])
        for part in (finished, more, last):
            for number in part:
                assert only_outcome(part, number).value == number / 10
        requests = dict(emulator.requests)
    assert requests["create jobs"] == 12
    # one list at start, one after the 410: not per trial, not per poll
    assert requests["list jobs"] == 2 and requests["list pods"] == 2, requests
    assert requests["watch jobs"] <= 4 and requests["watch pods"] <= 4, requests
    assert "get jobs" not in requests and "get pods" not in requests


def test_a_refused_create_fails_the_trial_or_the_run_by_its_cause(tmp_path: Path) -> None:
    """A full quota fails the trial as infrastructure (retried later); an invalid Job
    (from the executor options) stops the run with the API server's reason."""
    with (
        simulated_cluster(tmp_path) as (emulator, _, kc),
        make_executor(kc, tmp_path, 1, function=SCRIPTED) as executor,
    ):
        emulator.admission = lambda resource, obj: (
            403,
            "Forbidden",
            'jobs "x" is forbidden: exceeded quota: gpu, requested: 1',
        )
        finished, _ = run_all(executor, [request(0)])
        outcome = only_outcome(finished, 0)
        assert outcome.failure is TrialFailure.INFRASTRUCTURE
        assert "exceeded quota" in outcome.message
        emulator.admission = lambda resource, obj: (
            422,
            "Invalid",
            "spec.template.spec.tolerations[0].operator: Unsupported value",
        )
        with pytest.raises(SpecError, match=r"refused the trial Job .*tolerations\[0\]"):
            executor.submit(request(1))


def test_a_replacement_pod_stuck_pending_is_reported_too(tmp_path: Path) -> None:
    """After a preemption the Job's new pod cannot be scheduled: the trial is not waited
    on forever, though a pod of it ran before."""
    stuck = Fault(unschedulable="0/2 nodes are available: 2 node(s) had untolerated taint.")
    fault = Fault(preempt_after_s=0.3, then=stuck)
    with (
        simulated_cluster(tmp_path, faults=lambda job: fault) as (_, kubelet, kc),
        make_executor(kc, tmp_path, 1, function=SCRIPTED, pending_timeout_s=1.0) as executor,
    ):
        finished, _ = run_all(executor, [request(0, sleep=30)], timeout=30)
        assert kubelet.pods_created == 2
    outcome = only_outcome(finished, 0)
    assert outcome.failure is TrialFailure.INFRASTRUCTURE
    assert "untolerated taint" in outcome.message
