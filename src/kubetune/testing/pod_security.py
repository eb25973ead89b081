"""Check pod templates against the ``restricted`` Pod Security Standard, without a cluster.

A namespace labelled ``pod-security.kubernetes.io/enforce: restricted`` makes the API
server refuse pods that break the standard; a Job whose pods are refused just never starts
(its events say why). These helpers find such mistakes in tests instead: on every pod
template of the manifests, and on the trial Jobs an executor builds.

The rules follow https://kubernetes.io/docs/concepts/security/pod-security-standards/
(baseline + restricted, latest). ``read_only_root`` adds a rule of our own that the
standard does not make: containers mount their root filesystem read-only.

Usage::

    from kubetune.testing.pod_security import restricted_violations
    assert restricted_violations(job_as_dict) == []
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["pod_specs", "restricted_violations"]

# Volume types the restricted standard allows (everything else, hostPath above all, is refused).
_ALLOWED_VOLUMES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
_ALLOWED_SECCOMP = frozenset({"RuntimeDefault", "Localhost"})
_ALLOWED_SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
_SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")

# Where each workload kind keeps its pod spec.
_POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "PodTemplate": ("template", "spec"),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


def _as_dict(obj: Any) -> Mapping[str, Any]:
    """A manifest as a plain mapping: dicts as they are, kubernetes client models serialised."""
    if isinstance(obj, Mapping):
        return obj
    from kubernetes.client import ApiClient  # only for client models (V1Job, ...)

    data = ApiClient().sanitize_for_serialization(obj)
    if not isinstance(data, Mapping):
        raise TypeError(f"not a Kubernetes object: {type(obj).__name__}")
    return data


def pod_specs(obj: Any) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """``(where, pod spec)`` of every pod an object runs; nothing for kinds without pods."""
    data = _as_dict(obj)
    path = _POD_SPEC_PATHS.get(str(data.get("kind", "")))
    if path is None:
        return
    spec: Any = data
    for key in path:
        spec = spec.get(key) if isinstance(spec, Mapping) else None
    name = (data.get("metadata") or {}).get("name", "?")
    where = f"{data['kind']}/{name}"
    if not isinstance(spec, Mapping):
        yield where, {}  # reported as missing fields below, not silently passed
        return
    yield where, spec


def restricted_violations(obj: Any, *, read_only_root: bool = True) -> list[str]:
    """Every way the pods of ``obj`` break the restricted standard, one line each.

    ``obj`` is a manifest (dict) or a kubernetes client model of a Pod, PodTemplate or a
    workload (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob). An empty list
    means it complies.
    """
    problems: list[str] = []
    for where, spec in pod_specs(obj):
        problems += [f"{where}: {p}" for p in _pod_problems(spec, read_only_root)]
    return problems


def _pod_problems(spec: Mapping[str, Any], read_only_root: bool) -> list[str]:
    problems: list[str] = []
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            problems.append(f"spec.{field} must not be true")
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= _ALLOWED_VOLUMES:
            problems.append(
                f"volume {volume.get('name')!r}: type {sorted(kinds - _ALLOWED_VOLUMES)}"
                " is not allowed"
            )
    pod_sc = spec.get("securityContext") or {}
    for sysctl in pod_sc.get("sysctls") or []:
        if sysctl.get("name") not in _SAFE_SYSCTLS:
            problems.append(f"sysctl {sysctl.get('name')!r} is not allowed")
    problems += _context_problems("spec.securityContext", pod_sc)

    containers = [(kind, c) for kind in _CONTAINER_LISTS for c in spec.get(kind) or []]
    if not spec.get("containers"):
        problems.append("no containers")
    for kind, container in containers:
        where = f"{kind}[{container.get('name', '?')}]"
        sc = container.get("securityContext") or {}
        problems += _container_problems(where, container, sc, pod_sc, read_only_root)
    return problems


def _context_problems(where: str, sc: Mapping[str, Any]) -> list[str]:
    """Rules that apply alike to a pod's and a container's securityContext."""
    problems: list[str] = []
    if sc.get("runAsUser") == 0:
        problems.append(f"{where}.runAsUser must not be 0")
    seccomp = (sc.get("seccompProfile") or {}).get("type")
    if seccomp is not None and seccomp not in _ALLOWED_SECCOMP:
        problems.append(f"{where}.seccompProfile.type {seccomp!r} is not allowed")
    selinux = sc.get("seLinuxOptions") or {}
    if selinux.get("type", "") not in _ALLOWED_SELINUX_TYPES:
        problems.append(f"{where}.seLinuxOptions.type {selinux['type']!r} is not allowed")
    if selinux.get("user") or selinux.get("role"):
        problems.append(f"{where}.seLinuxOptions.user/role must not be set")
    apparmor = (sc.get("appArmorProfile") or {}).get("type")
    if apparmor == "Unconfined":
        problems.append(f"{where}.appArmorProfile.type must not be Unconfined")
    if (sc.get("windowsOptions") or {}).get("hostProcess"):
        problems.append(f"{where}.windowsOptions.hostProcess must not be true")
    return problems


def _container_problems(
    where: str,
    container: Mapping[str, Any],
    sc: Mapping[str, Any],
    pod_sc: Mapping[str, Any],
    read_only_root: bool,
) -> list[str]:
    problems = _context_problems(f"{where}.securityContext", sc)
    if sc.get("privileged"):
        problems.append(f"{where}: privileged must not be true")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{where}: securityContext.allowPrivilegeEscalation must be false")
    caps = sc.get("capabilities") or {}
    if "ALL" not in (caps.get("drop") or []):
        problems.append(f"{where}: securityContext.capabilities.drop must hold ALL")
    added = set(caps.get("add") or []) - {"NET_BIND_SERVICE"}
    if added:
        problems.append(f"{where}: capabilities {sorted(added)} must not be added")
    # runAsNonRoot and seccomp may come from the pod; the container's own setting wins.
    if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
        problems.append(f"{where}: runAsNonRoot must be true (on the pod or the container)")
    seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
    if seccomp not in _ALLOWED_SECCOMP:
        problems.append(f"{where}: seccompProfile.type must be RuntimeDefault or Localhost")
    if sc.get("procMount", "Default") != "Default":
        problems.append(f"{where}: procMount must be Default")
    for port in container.get("ports") or []:
        if port.get("hostPort"):
            problems.append(f"{where}: hostPort {port['hostPort']} is not allowed")
    if read_only_root and sc.get("readOnlyRootFilesystem") is not True:
        problems.append(f"{where}: securityContext.readOnlyRootFilesystem should be true")
    return problems
