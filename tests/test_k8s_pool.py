"""Warm worker pods (``executor: {kind: kubernetes, mode: worker-pool}``) on a SIMULATED
cluster: the in-process API emulator (``kubetune.testing.k8s_emulator``) reached through
the real ``kubernetes`` client, and the simulated kubelet, which runs each worker Job's
``kubetune worker`` command as a local process (the pod).

The pool passes the executor conformance suite there; a worker pod that dies mid-trial
has its trial failed as infrastructure and is replaced; ``trials_per_gpu`` packs k trials
into one pod; workers run trial after trial without a new pod.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from k8s_helpers import SPEC, simulated_cluster
from kubetune.core.executor import Executor, FinishedEvent
from kubetune.core.trial import TrialFailure, TrialOutcome, TrialStatus
from kubetune.errors import SpecError
from kubetune.executors.kubernetes.client import connect
from kubetune.executors.kubernetes.options import KubernetesOptions
from kubetune.executors.kubernetes.pool import WorkerPoolExecutor
from kubetune.storage import path_to_uri
from kubetune.testing.executors import (
    ExecutorConformance,
    MakeExecutor,
    only_outcome,
    request,
    run_all,
)
from kubetune.testing.kubelet import Fault
from kubetune.testing.trial_functions import SCRIPTED

pytestmark = pytest.mark.slow  # worker pods are local interpreters started by the kubelet


def make_pool(
    kubeconfig: Path, tmp_path: Path, capacity: int, **options: Any
) -> WorkerPoolExecutor:
    """The worker-pool executor built the way ``from_context`` builds it."""
    parsed = KubernetesOptions.parse(
        {
            "kubeconfig": str(kubeconfig),
            "report_host": "127.0.0.1",
            "cancel_grace_s": 5,
            "mode": "worker-pool",
            "function": SCRIPTED,
            **options,
        }
    )
    api, namespace = connect(parsed)
    return WorkerPoolExecutor(
        options=parsed,
        api_client=api,
        namespace=namespace,
        experiment=SPEC["name"],
        spec_data=SPEC,
        spec_dir=str(tmp_path),
        capacity=capacity,
        trials_uri=path_to_uri(tmp_path / "trials"),
        token_dir=tmp_path,
    )


class TestWorkerPoolOnSimulatedCluster(ExecutorConformance):
    @pytest.fixture
    def make_executor(self, tmp_path: Path) -> Iterator[MakeExecutor]:
        with simulated_cluster(tmp_path) as (_, _, kubeconfig):

            def make(capacity: int) -> Executor:
                return make_pool(kubeconfig, tmp_path, capacity)

            yield make


def _jobs(emulator: Any) -> list[dict[str, Any]]:
    return emulator.list_objects("jobs", "default")


def _wait_started(executor: WorkerPoolExecutor, number: int, timeout: float = 60) -> None:
    """Until the trial's code runs in a worker (its started call reached the controller)."""
    deadline = time.monotonic() + timeout
    while executor._server.started_at(number) is None:
        assert time.monotonic() < deadline, f"trial {number} never started"
        assert executor.poll(0.1) == []


def test_workers_are_reused_trial_after_trial(tmp_path: Path) -> None:
    """Six trials on two warm pods: two Jobs, two pods, two worker processes for all."""
    with simulated_cluster(tmp_path) as (emulator, kubelet, kc):
        with make_pool(kc, tmp_path, 2) as executor:
            finished, _ = run_all(executor, [request(n, x=n / 10) for n in range(6)])
            assert len(executor.worker_jobs) == 2
        assert kubelet.pods_created == 2 and len(kubelet.jobs_seen) == 2
        pids = [only_outcome(finished, n).metrics["pid"] for n in range(6)]
        assert [only_outcome(finished, n).value for n in range(6)] == [n / 10 for n in range(6)]
        # at most the two worker processes ran all six (which one runs what is their race)
        assert len(set(pids)) <= 2, pids
        assert _jobs(emulator) == []  # closing the executor deleted its worker Jobs
        (job, *_) = [name for name in kubelet.jobs_seen]
        assert job.startswith("kt-conformance-w") and job.endswith("-g1")


def _outcome_of(executor: Executor, number: int, timeout: float = 60) -> TrialOutcome:
    """The finished outcome of a trial already submitted (exactly one event)."""
    events: list[FinishedEvent] = []
    deadline = time.monotonic() + timeout
    while not events:
        assert time.monotonic() < deadline, f"trial {number} never finished"
        events += [e for e in executor.poll(0.2) if isinstance(e, FinishedEvent)]
    events += [e for e in executor.poll(0.5) if isinstance(e, FinishedEvent)]
    assert [e.number for e in events] == [number], events
    return events[0].outcome


@pytest.mark.reliability  # part of the suite: pytest -m reliability
@pytest.mark.parametrize("what", ["pod", "job"])
def test_a_worker_pod_killed_mid_trial_fails_it_as_infrastructure_and_is_replaced(
    tmp_path: Path, what: str
) -> None:
    """Deleting the worker's pod (its Job starts a new one, whose worker says its slot
    restarted) or its whole Job (the controller creates the next generation): the trial
    in flight fails as infrastructure (the loop retries it), the next one runs."""
    with simulated_cluster(tmp_path) as (emulator, kubelet, kc):
        with make_pool(kc, tmp_path, 1) as executor:
            executor.submit(request(0, sleep=60))
            _wait_started(executor, 0)
            (job,) = _jobs(emulator)
            name = job["metadata"]["name"]
            if what == "pod":
                (pod,) = emulator.list_objects("pods", "default")
                emulator.delete("pods", "default", pod["metadata"]["name"], None)
            else:
                emulator.delete("jobs", "default", name, "Background")
            lost = _outcome_of(executor, 0)
            assert lost.failure is TrialFailure.INFRASTRUCTURE, lost
            assert lost.failure.retryable
            again, _ = run_all(executor, [request(1, x=0.3)], timeout=60)
            assert only_outcome(again, 1).value == 0.3
            live = executor.worker_jobs
        assert kubelet.pods_created == 2
        if what == "pod":  # the same Job, a new pod
            assert live == [name] and "replaced" in lost.message
        else:  # a new Job of the next generation
            assert live == [name.replace("-g1", "-g2")] and "disappeared" in lost.message


def test_trials_per_gpu_packs_k_trials_into_one_gpu_pod(tmp_path: Path) -> None:
    """trials_per_gpu: 3 with parallel 3: one pod (nvidia.com/gpu: 1) runs three trials at
    once, in three worker processes."""
    with simulated_cluster(tmp_path) as (emulator, kubelet, kc):
        with make_pool(kc, tmp_path, 3, trials_per_gpu=3, gpus=1) as executor:
            assert executor.capacity == 3
            finished, _ = run_all(executor, [request(n, sleep=1.5) for n in range(3)])
            (job,) = _jobs(emulator)
        (container,) = job["spec"]["template"]["spec"]["containers"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert "--slots" in container["command"] and "3" in container["command"]
        assert kubelet.pods_created == 1
        spans = [only_outcome(finished, n).metrics for n in range(3)]
        assert len({s["pid"] for s in spans}) == 3
        assert max(s["start"] for s in spans) < min(s["end"] for s in spans), "not concurrent"


def test_worker_pool_options_are_checked() -> None:
    with pytest.raises(SpecError, match=r"executor\.trials_per_gpu: only used with mode"):
        KubernetesOptions.parse({"trials_per_gpu": 2})
    with pytest.raises(SpecError, match=r"executor\.workers: must be an integer >= 1"):
        KubernetesOptions.parse({"mode": "worker-pool", "workers": 0})
    parsed = KubernetesOptions.parse({"mode": "worker-pool", "workers": 3, "trials_per_gpu": 2})
    assert (parsed.workers, parsed.trials_per_gpu) == (3, 2)


def test_a_pruned_trial_stops_and_its_worker_serves_the_next(tmp_path: Path) -> None:
    """Prune answers travel to the worker process over HTTP: a pruned trial stops, and the
    same worker serves the next trial."""
    with simulated_cluster(tmp_path) as (_, kubelet, kc):
        with make_pool(kc, tmp_path, 1) as executor:
            finished, reports = run_all(
                executor, [request(0, action="report", steps=5)], prune_at=2
            )
            more, _ = run_all(executor, [request(1, x=0.6)])
        assert only_outcome(finished, 0).status is TrialStatus.PRUNED
        assert [r.step for r in reports] == [1, 2]
        assert only_outcome(more, 1).value == 0.6 and kubelet.pods_created == 1


def test_trials_are_not_queued_forever_when_no_worker_pod_can_start(tmp_path: Path) -> None:
    """No worker pod can be scheduled: after pending_timeout_s the queued trials fail as
    infrastructure failures, with the scheduler's reason from the pods."""
    fault = Fault(unschedulable="0/3 nodes are available: 3 Insufficient nvidia.com/gpu.")
    with (
        simulated_cluster(tmp_path, faults=lambda job: fault) as (emulator, _, kc),
        make_pool(kc, tmp_path, 1, pending_timeout_s=1.0) as executor,
    ):
        finished, _ = run_all(executor, [request(0)], timeout=20)
        assert emulator.requests["list pods"] == 1  # asked once, for the message
    outcome = only_outcome(finished, 0)
    assert outcome.failure is TrialFailure.INFRASTRUCTURE, outcome
    assert "within 1s" in outcome.message and "Insufficient nvidia.com/gpu" in outcome.message
