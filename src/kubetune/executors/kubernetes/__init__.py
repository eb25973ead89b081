"""The Kubernetes executor: trials as ``batch/v1`` Jobs in a cluster.

    options     the ``executor:`` options, checked          image     the default image
    naming      deterministic Job names and labels          job       the Job manifest
    client      in-cluster / kubeconfig configuration       informer  list + watch caches
    pods        what a pod's status means                   results   request/result objects
    cluster     what both modes share (:class:`ClusterExecutor`: clients, report server,
                deletes, the ``api_outage_s`` bound)
    executor    :class:`KubernetesExecutor` (Job per trial)
    pool        :class:`WorkerPoolExecutor` (``mode: worker-pool``: warm worker pods)
    work_queue  the controller side of the worker protocol (``kubetune worker``)

``DEFAULT_IMAGE`` is importable without the ``kubernetes`` client installed (manifests and
KFP components use it); the executor is imported when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kubetune.executors.kubernetes.image import DEFAULT_IMAGE

if TYPE_CHECKING:
    from kubetune.executors.kubernetes.executor import KubernetesExecutor

__all__ = ["DEFAULT_IMAGE", "KubernetesExecutor"]


def __getattr__(name: str) -> Any:
    if name == "KubernetesExecutor":
        from kubetune.executors.kubernetes.executor import KubernetesExecutor

        return KubernetesExecutor
    raise AttributeError(name)
