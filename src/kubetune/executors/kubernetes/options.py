"""The ``executor: {kind: kubernetes, ...}`` options, checked once into a typed object.

Every mistake raises :class:`~kubetune.errors.SpecError` naming the field
(``executor.<option>``), so a bad spec fails before any Job is created.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubetune.errors import SpecError
from kubetune.executors.kubernetes.image import DEFAULT_IMAGE
from kubetune.executors.options import check_known, positive_number, whole_number

__all__ = ["MODES", "KubernetesOptions"]

MODES = ("job-per-trial", "worker-pool")
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")


# The controller's report port inside a cluster: what manifests/ opens (Service
# kubetune-controller, the trial -> controller NetworkPolicy).
IN_CLUSTER_REPORT_PORT = 8790


@dataclass(frozen=True)
class KubernetesOptions:
    # where: the cluster and namespace
    namespace: str | None = None  # None: the kubeconfig context's, in-cluster the pod's own
    kubeconfig: str | None = None
    context: str | None = None
    in_cluster: bool | None = None  # None: in-cluster when run inside a pod
    mode: str = "job-per-trial"
    # worker-pool mode: warm pods pulling trial after trial (capacity = workers x k)
    workers: int | None = None  # None: enough pods for the spec's parallel trials
    trials_per_gpu: int = 1  # k worker processes (k concurrent trials) per pod
    worker_command: tuple[str, ...] = ("kubetune", "worker")
    worker_idle_timeout_s: float = 300.0  # a worker exits when its controller is gone this long
    # the pod template
    image: str = DEFAULT_IMAGE
    image_pull_policy: str | None = None
    image_pull_secrets: tuple[str, ...] = ()
    command: tuple[str, ...] = ("kubetune", "trial")
    function: str | None = None  # module:attr trial function instead of the spec's trainer
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    gpus: int | None = None
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()
    affinity: dict[str, Any] | None = None
    service_account: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    env_from: tuple[dict[str, Any], ...] = ()
    volumes: tuple[dict[str, Any], ...] = ()
    volume_mounts: tuple[dict[str, Any], ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    scratch_size: str = "2Gi"
    # the Job's lifecycle
    ttl_seconds_after_finished: int = 3600
    startup_allowance_s: float = 600.0
    pending_timeout_s: float = 300.0
    cancel_grace_s: float = 30.0
    watch_timeout_s: int = 300
    # how long the API may stay unreachable (the executor waits, retrying with backoff)
    # before the run stops with an error; its Jobs run on and the next run adopts them
    api_outage_s: float = 300.0
    # how trials reach the controller and where they leave their result
    trials_uri: str | None = None
    controller_url: str | None = None
    report_host: str = "0.0.0.0"  # noqa: S104 - trial pods on other nodes must reach it
    report_port: int = 0  # in a cluster: IN_CLUSTER_REPORT_PORT unless set

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> KubernetesOptions:
        check_known("kubernetes", options, cls.__dataclass_fields__)
        values: dict[str, Any] = {}
        for key in ("namespace", "kubeconfig", "context", "image", "function",
                    "service_account", "trials_uri", "controller_url", "report_host",
                    "scratch_size"):  # fmt: skip
            if key in options:
                values[key] = _text(options, key)
        if "in_cluster" in options:
            if not isinstance(options["in_cluster"], bool):
                raise SpecError(
                    f"executor.in_cluster: must be true or false (got {options['in_cluster']!r})"
                )
            values["in_cluster"] = options["in_cluster"]
        mode = options.get("mode", "job-per-trial")
        if mode not in MODES:
            raise SpecError(f"executor.mode: must be one of {', '.join(MODES)} (got {mode!r})")
        values["mode"] = mode
        for key in ("workers", "trials_per_gpu"):
            number = whole_number(options, key, minimum=1)
            if number is not None:
                if mode != "worker-pool":
                    raise SpecError(f"executor.{key}: only used with mode: worker-pool")
                values[key] = number
        policy = options.get("image_pull_policy")
        if policy is not None and policy not in _PULL_POLICIES:
            raise SpecError(
                f"executor.image_pull_policy: must be one of {', '.join(_PULL_POLICIES)}"
                f" (got {policy!r})"
            )
        values["image_pull_policy"] = policy
        for key in ("image_pull_secrets", "command", "worker_command"):
            if key in options:
                values[key] = tuple(_strings(options, key))
        for key in ("command", "worker_command"):
            if key in values and not values[key]:
                raise SpecError(f"executor.{key}: must not be empty")
        for key in ("node_selector", "env", "labels", "annotations"):
            if key in options:
                values[key] = _string_map(options, key)
        for key in ("tolerations", "env_from", "volumes", "volume_mounts"):
            if key in options:
                values[key] = tuple(_objects(options, key))
        for key in ("resources", "affinity"):
            if key in options and not isinstance(options[key], dict):
                raise SpecError(f"executor.{key}: must be a mapping")
        if "resources" in options:
            unknown = set(options["resources"]) - {"requests", "limits"}
            if unknown:
                raise SpecError(f"executor.resources.{sorted(unknown)[0]}: use requests or limits")
            values["resources"] = {k: dict(v) for k, v in options["resources"].items()}
        if "affinity" in options:
            values["affinity"] = dict(options["affinity"])
        for key in ("gpus", "ttl_seconds_after_finished", "watch_timeout_s"):
            number = whole_number(options, key, minimum=0 if key != "watch_timeout_s" else 1)
            if number is not None:
                values[key] = number
        port = whole_number(options, "report_port", minimum=0)
        if port is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            # In a cluster: the port manifests/' Service and NetworkPolicies open for
            # reports. Elsewhere (tests, a laptop against a remote cluster): any free port.
            port = IN_CLUSTER_REPORT_PORT
        if port is not None:
            if port > 65535:
                raise SpecError(f"executor.report_port: must be <= 65535 (got {port})")
            values["report_port"] = port
        for key in ("startup_allowance_s", "pending_timeout_s", "cancel_grace_s",
                    "worker_idle_timeout_s", "api_outage_s"):  # fmt: skip
            number_f = positive_number(options, key)
            if number_f is not None:
                values[key] = number_f
        return cls(**values)


def _text(options: Mapping[str, Any], key: str) -> str:
    value = options[key]
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"executor.{key}: must be a non-empty string (got {value!r})")
    return value


def _strings(options: Mapping[str, Any], key: str) -> list[str]:
    value = options[key]
    if (
        isinstance(value, str)
        or not isinstance(value, list)
        or not all(isinstance(v, str) for v in value)
    ):
        raise SpecError(f"executor.{key}: must be a list of strings (got {value!r})")
    return list(value)


def _string_map(options: Mapping[str, Any], key: str) -> dict[str, str]:
    value = options[key]
    if not isinstance(value, dict):
        raise SpecError(f"executor.{key}: must be a mapping of names to values")
    out = {}
    for name, item in value.items():
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise SpecError(f"executor.{key}.{name}: must be a string (got {item!r})")
        out[str(name)] = str(item)
    return out


def _objects(options: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    value = options[key]
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise SpecError(f"executor.{key}: must be a list of mappings (Kubernetes objects)")
    return [dict(v) for v in value]
