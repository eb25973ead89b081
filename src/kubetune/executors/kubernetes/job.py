"""The ``batch/v1`` Job of one trial attempt, as a plain manifest (a dict).

Plain data rather than client model objects: it is what ``kubectl`` shows, what
``kubernetes-validate`` checks, and what the API accepts as a request body.

Why each Job field is set the way it is:

* ``backoffLimit: 0`` and ``restartPolicy: Never``: kubetune owns retries (a new attempt is
  a new Job), so an infrastructure failure is counted once, by the loop.
* ``podFailurePolicy``: a disrupted pod (preemption, eviction, node drain: the
  ``DisruptionTarget`` condition) is *ignored*: the Job starts a new pod and the trial is
  not charged; exit code 3 (invalid config) fails the Job at once.
* ``activeDeadlineSeconds``: the trial deadline plus the start-up allowance, a backstop the
  cluster enforces even when the controller is gone (the controller enforces the exact
  deadline, counted from when the trial's code starts).
* the restricted Pod Security profile: non-root, no privilege escalation, no capabilities,
  RuntimeDefault seccomp, read-only root file system with an ``emptyDir`` at ``/tmp``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from kubetune.core.trial import ExitCode
from kubetune.executors.kubernetes.naming import (
    ANNOTATION_PREFIX,
    LABEL_ATTEMPT,
    LABEL_EXPERIMENT,
    LABEL_MANAGED_BY,
    LABEL_STUDY,
    LABEL_TRIAL,
    LABEL_WORKER,
    label_value,
)
from kubetune.executors.kubernetes.options import KubernetesOptions

__all__ = [
    "CONTAINER",
    "ENV_REPORT_TOKEN",
    "ENV_REPORT_URL",
    "TrialJob",
    "WorkerJob",
    "build_job",
    "build_worker_job",
    "selector_labels",
]

CONTAINER = "trial"
ENV_REPORT_URL = "KUBETUNE_REPORT_URL"
ENV_REPORT_TOKEN = "KUBETUNE_REPORT_TOKEN"  # noqa: S105 - a variable name
_SCRATCH = "scratch"


@dataclass(frozen=True)
class TrialJob:
    """What varies from one trial attempt's Job to the next."""

    name: str
    experiment: str
    study: str
    number: int
    attempt: int
    request_uri: str
    result_uri: str
    deadline_s: float | None
    report_url: str | None
    report_token: str | None


@dataclass(frozen=True)
class WorkerJob:
    """One warm worker pod's Job (``mode: worker-pool``)."""

    name: str
    experiment: str
    study: str
    index: int
    report_url: str
    report_token: str
    slots: int = 1  # trials_per_gpu: worker processes in the pod
    idle_timeout_s: float = 300.0


def selector_labels(experiment: str, study: str) -> dict[str, str]:
    """The labels that select every trial Job (and pod) of one study."""
    return {
        LABEL_MANAGED_BY: "kubetune",
        LABEL_EXPERIMENT: label_value(experiment),
        LABEL_STUDY: label_value(study),
    }


def build_job(options: KubernetesOptions, trial: TrialJob) -> dict[str, Any]:
    labels = {
        # What manifests/' NetworkPolicies select trial pods by (egress to S3, the study
        # database and the controller's report port); a user label may override them.
        "app.kubernetes.io/component": "trial",
        "app.kubernetes.io/part-of": "kubetune",
        **options.labels,
        **selector_labels(trial.experiment, trial.study),
        LABEL_TRIAL: str(trial.number),
        LABEL_ATTEMPT: str(trial.attempt),
    }
    annotations = {
        **options.annotations,
        f"{ANNOTATION_PREFIX}experiment": trial.experiment,
        f"{ANNOTATION_PREFIX}study": trial.study,
        f"{ANNOTATION_PREFIX}result": trial.result_uri,
    }
    job_spec: dict[str, Any] = {
        "backoffLimit": 0,
        "ttlSecondsAfterFinished": options.ttl_seconds_after_finished,
        "podFailurePolicy": {
            "rules": [
                {
                    "action": "Ignore",
                    "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                },
                {
                    "action": "FailJob",
                    "onExitCodes": {
                        "containerName": CONTAINER,
                        "operator": "In",
                        "values": [int(ExitCode.INVALID_CONFIG)],
                    },
                },
            ]
        },
        "template": {
            "metadata": {"labels": labels, "annotations": annotations},
            "spec": _trial_pod_spec(options, trial),
        },
    }
    if trial.deadline_s is not None:
        job_spec["activeDeadlineSeconds"] = math.ceil(
            trial.deadline_s + options.startup_allowance_s
        )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": trial.name, "labels": labels, "annotations": annotations},
        "spec": job_spec,
    }


def build_worker_job(options: KubernetesOptions, worker: WorkerJob) -> dict[str, Any]:
    """A long-lived worker pod's Job: ``kubetune worker`` pulling trial after trial.

    One Job per worker pod (not one Job with ``parallelism: N``): each pod has its own
    name, so a dead one is replaced on its own and a restarted controller adopts each by
    name. No ``activeDeadlineSeconds`` (the controller enforces each trial's deadline);
    ``podFailurePolicy`` ignores disruption as for trial Jobs, and the replacement pod's
    worker tells the controller its slot restarted, which fails the lost trial.
    """
    labels = {
        # manifests/' NetworkPolicies let worker pods reach the controller's port
        "app.kubernetes.io/component": "worker",
        "app.kubernetes.io/part-of": "kubetune",
        **options.labels,
        **selector_labels(worker.experiment, worker.study),
        LABEL_WORKER: str(worker.index),
    }
    annotations = {
        **options.annotations,
        f"{ANNOTATION_PREFIX}experiment": worker.experiment,
        f"{ANNOTATION_PREFIX}study": worker.study,
    }
    command = [
        *options.worker_command, "--worker", worker.name, "--slots", str(worker.slots),
        "--idle-timeout", f"{worker.idle_timeout_s:g}",
    ]  # fmt: skip
    if options.function:
        command += ["--function", options.function]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": worker.name, "labels": labels, "annotations": annotations},
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": options.ttl_seconds_after_finished,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "Ignore",
                        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                    }
                ]
            },
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": _pod_spec(options, command, worker.report_url, worker.report_token),
            },
        },
    }


def _trial_pod_spec(options: KubernetesOptions, trial: TrialJob) -> dict[str, Any]:
    command = [*options.command, "--request", trial.request_uri, "--output", trial.result_uri]
    if options.function:
        command += ["--function", options.function]
    return _pod_spec(options, command, trial.report_url, trial.report_token)


def _pod_spec(
    options: KubernetesOptions, command: list[str], report_url: str | None, token: str | None
) -> dict[str, Any]:
    env = [{"name": k, "value": v} for k, v in options.env.items()]
    # /tmp is the pod's own emptyDir (the root filesystem is read-only), not a shared /tmp
    env += [{"name": "TMPDIR", "value": "/tmp"}, {"name": "HOME", "value": "/tmp"}]  # noqa: S108
    if report_url and token:
        env += [
            {"name": ENV_REPORT_URL, "value": report_url},
            {"name": ENV_REPORT_TOKEN, "value": token},
        ]
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": options.image,
        "command": command,
        "env": env,
        "resources": _resources(options),
        # a trial that dies before writing its result leaves the tail of its output as the
        # termination message: the controller names the cause without reading logs
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": _SCRATCH, "mountPath": "/tmp"}, *options.volume_mounts],  # noqa: S108
    }
    if options.env_from:
        container["envFrom"] = list(options.env_from)
    if options.image_pull_policy:
        container["imagePullPolicy"] = options.image_pull_policy
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [container],
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "volumes": [
            {"name": _SCRATCH, "emptyDir": {"sizeLimit": options.scratch_size}},
            *options.volumes,
        ],
        # the pod has no business with the API server: no token mounted
        "automountServiceAccountToken": False,
    }
    if options.service_account:
        spec["serviceAccountName"] = options.service_account
    if options.node_selector:
        spec["nodeSelector"] = dict(options.node_selector)
    if options.tolerations:
        spec["tolerations"] = list(options.tolerations)
    if options.affinity:
        spec["affinity"] = dict(options.affinity)
    if options.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": n} for n in options.image_pull_secrets]
    return spec


def _resources(options: KubernetesOptions) -> dict[str, Any]:
    resources = {k: dict(v) for k, v in options.resources.items()}
    if options.gpus:
        # extended resources are set as limits (requests default to the same)
        resources.setdefault("limits", {})["nvidia.com/gpu"] = options.gpus
    return resources
