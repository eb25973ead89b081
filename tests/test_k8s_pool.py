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
from kubetune.core.executor import Executor
from kubetune.core.trial import TrialFailure, TrialStatus
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


def make_pool(kubeconfig: Path, tmp_path: Path, capacity: int, **options: Any) -> WorkerPoolExecutor:
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
