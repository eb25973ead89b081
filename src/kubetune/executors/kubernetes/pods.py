"""What a trial's pods say, read from the cached pod objects (raw API dicts).

Pure functions, no API calls: why a pod is not running yet (unschedulable, image pull
error), when its container started, and how it ended (exit code, or lost with its node).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kubetune.executors.kubernetes.job import CONTAINER

__all__ = ["PodEnd", "disrupted", "job_condition", "pod_end", "waiting_reason"]

Obj = dict[str, Any]

# Container waiting reasons that mean "this will not start by itself soon".
_STUCK = {
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
}


@dataclass(frozen=True)
class PodEnd:
    """How a trial pod ended: an exit code when its container ran, else the pod's reason."""

    exit_code: int | None
    message: str


def _container(pod: Obj) -> Obj:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return next((s for s in statuses if s.get("name") == CONTAINER), {})


def _condition(obj: Obj, kind: str) -> Obj | None:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == kind), None)


def disrupted(pod: Obj) -> bool:
    """Preempted, evicted or drained: the Job ignores it and starts another pod."""
    condition = _condition(pod, "DisruptionTarget")
    return condition is not None and condition.get("status") == "True"


def job_condition(job: Obj) -> tuple[str, str, str] | None:
    """``("Complete" | "Failed", reason, message)`` once the Job is finished, else None."""
    for kind in ("Complete", "Failed"):
        condition = _condition(job, kind)
        if condition is not None and condition.get("status") == "True":
            return kind, condition.get("reason") or "", condition.get("message") or ""
    return None


def running(pod: Obj) -> bool:
    return "running" in (_container(pod).get("state") or {})


def waiting_reason(pod: Obj) -> str | None:
    """Why a pending pod does not run, if that looks stuck (else None: still starting)."""
    scheduled = _condition(pod, "PodScheduled")
    if scheduled is not None and scheduled.get("status") == "False":
        reason = scheduled.get("reason") or "Unschedulable"
        return f"{reason}: {scheduled.get('message') or ''}".strip()
    waiting = (_container(pod).get("state") or {}).get("waiting") or {}
    if waiting.get("reason") in _STUCK:
        return f"{waiting['reason']}: {waiting.get('message') or ''}".strip()
    return None


def pod_end(pods: Iterable[Obj]) -> PodEnd | None:
    """How the trial's (last, not disrupted) pod ended; None if none has ended yet."""
    for pod in sorted(
        pods, key=lambda p: p["metadata"].get("creationTimestamp") or "", reverse=True
    ):
        status = pod.get("status") or {}
        if status.get("phase") not in ("Succeeded", "Failed") or disrupted(pod):
            continue
        terminated = (_container(pod).get("state") or {}).get("terminated")
        if terminated and terminated.get("exitCode") is not None:
            log = _tail(terminated.get("message") or "")
            reason = terminated.get("reason") or ""
            # the runtime's reason (OOMKilled, ContainerCannotRun) says more than "Error"
            if reason in ("", "Error", "Completed"):
                detail = log or reason
            else:
                detail = f"{reason}: {log}" if log else reason
            return PodEnd(int(terminated["exitCode"]), detail)
        reason = status.get("reason") or "pod failed"
        return PodEnd(None, f"{reason}: {status.get('message') or ''}".strip(": "))
    return None


def _tail(message: str, lines: int = 3) -> str:
    """The last lines of a termination message (with FallbackToLogsOnError: the log)."""
    kept = [line.strip() for line in message.splitlines() if line.strip()]
    return " | ".join(kept[-lines:])
