"""The Kubernetes API client, configured in-cluster or from a kubeconfig (and context),
with ``kubernetes.config`` doing the reading."""

from __future__ import annotations

import os
from pathlib import Path

from kubernetes import client, config

from kubetune.errors import SpecError
from kubetune.executors.kubernetes.options import KubernetesOptions

__all__ = ["connect"]

_SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def connect(options: KubernetesOptions) -> tuple[client.ApiClient, str]:
    """An API client and the namespace trials run in.

    In a pod (``in_cluster`` true, or unset with no kubeconfig given and the service
    environment present) the pod's service account is used and its namespace is the
    default; otherwise the kubeconfig (``$KUBECONFIG`` or ``~/.kube/config`` unless
    ``kubeconfig`` names one) and its ``context`` (default: the current one).
    """
    configuration = client.Configuration()
    in_cluster = options.in_cluster
    if in_cluster is None:
        in_cluster = options.kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ
    try:
        if in_cluster:
            config.load_incluster_config(client_configuration=configuration)
            namespace = options.namespace or _pod_namespace()
        else:
            config.load_kube_config(
                config_file=options.kubeconfig,
                context=options.context,
                client_configuration=configuration,
            )
            namespace = options.namespace or _context_namespace(options)
    except (config.ConfigException, OSError, ValueError, TypeError) as exc:
        where = (
            "the in-cluster service account"
            if in_cluster
            else (
                f"kubeconfig {options.kubeconfig}"
                if options.kubeconfig
                else "the default kubeconfig"
            )
        )
        field = "in_cluster" if in_cluster else "kubeconfig"
        raise SpecError(
            f"executor.{field}: cannot configure the Kubernetes client from {where}: {exc}"
        ) from None
    return client.ApiClient(configuration), namespace


def _pod_namespace() -> str:
    try:
        return _SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


def _context_namespace(options: KubernetesOptions) -> str:
    contexts, current = config.list_kube_config_contexts(config_file=options.kubeconfig)
    chosen = next((c for c in contexts if c["name"] == options.context), None) or current
    namespace = (chosen or {}).get("context", {}).get("namespace")
    return str(namespace) if namespace else "default"
