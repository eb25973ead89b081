"""Shared set-up of the Kubernetes executor tests: a SIMULATED cluster.

The API server is :class:`kubetune.testing.k8s_emulator.KubernetesEmulator` (in-process,
loopback only) reached through the real ``kubernetes`` client from a kubeconfig; pods are
run by :class:`kubetune.testing.kubelet.SimulatedKubelet` as local processes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kubetune.executors.kubernetes.client import connect
from kubetune.executors.kubernetes.executor import KubernetesExecutor
from kubetune.executors.kubernetes.options import KubernetesOptions
from kubetune.storage import path_to_uri
from kubetune.testing.k8s_emulator import KubernetesEmulator
from kubetune.testing.kubelet import Fault, SimulatedKubelet

SPEC: dict[str, Any] = {
    "name": "conformance",
    "objective": {"metric": "value", "direction": "minimize"},
    "search_space": {"x": {"type": "float", "low": 0, "high": 1}},
}


@contextmanager
def simulated_cluster(
    tmp_path: Path, faults: Callable[[dict[str, Any]], Fault | None] | None = None, **kubelet: Any
) -> Iterator[tuple[KubernetesEmulator, SimulatedKubelet, Path]]:
    """The simulated API server and kubelet, and a kubeconfig file pointing at it."""
    with (
        KubernetesEmulator() as emulator,
        SimulatedKubelet(emulator, faults=faults, **kubelet) as node,
    ):
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(emulator.kubeconfig())
        yield emulator, node, kubeconfig


def make_executor(
    kubeconfig: Path, tmp_path: Path, capacity: int, **options: Any
) -> KubernetesExecutor:
    """The executor built the way ``from_context`` builds it, running ``options['function']``."""
    parsed = KubernetesOptions.parse(
        {"kubeconfig": str(kubeconfig), "report_host": "127.0.0.1", "cancel_grace_s": 5, **options}
    )
    api, namespace = connect(parsed)
    return KubernetesExecutor(
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


def trial_of(job: dict[str, Any]) -> tuple[int, int]:
    labels = job["metadata"]["labels"]
    return int(labels["kubetune.dev/trial"]), int(labels["kubetune.dev/attempt"])
