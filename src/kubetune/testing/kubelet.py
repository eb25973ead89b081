"""A simulated kubelet (and Job controller) for the simulated API server.

It works on :class:`~kubetune.testing.k8s_emulator.KubernetesEmulator`.

For each Job created in its namespace it creates a pod, "schedules" it, runs the pod's
container command as a local process with the container's env, and writes pod and Job
status back the way Kubernetes does (``Running`` with ``startedAt``, ``terminated`` with
the exit code, the Job's ``Complete``/``Failed`` condition with the reason its
``podFailurePolicy``, ``backoffLimit`` or ``activeDeadlineSeconds`` gives). Deleting the
pod (a Job deleted with background propagation) kills the process group.

Faults, chosen per Job by ``faults(job) -> Fault | None``: a start delay, an unschedulable
pod, an image pull error, a preemption (the pod gets ``DisruptionTarget`` and, as
``podFailurePolicy: Ignore`` says, the Job starts a new pod), a node loss (the pod fails
without an exit code), an out-of-memory kill (the process is SIGKILLed and its container
ends with exit code 137 and reason ``OOMKilled``, as a container runtime reports it).

``runtime="simulated"`` runs no process: the "container" sleeps ``trial_s`` and writes a
completed result to its ``--output``; the benchmark uses it for 1,000 trials. A
``kubetune worker`` container (worker-pool mode) is simulated by one thread per slot that
speaks the worker protocol to the controller (ask, sleep ``trial_s``, write the result,
say done) until told to stop or its pod is deleted.

The image is simulated too: a command starting with ``kubetune`` runs
``python -m kubetune`` with this interpreter and this ``PYTHONPATH``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubetune.testing.k8s_emulator import KubernetesEmulator, WatchEvent, now_iso

__all__ = ["Fault", "SimulatedKubelet"]

Obj = dict[str, Any]


@dataclass(frozen=True)
class Fault:
    start_delay_s: float | None = None  # overrides the kubelet's default start delay
    unschedulable: str | None = None  # the scheduler's message; the pod never runs
    image_pull_error: bool = False  # the image cannot be pulled; the pod never runs
    preempt_after_s: float | None = None  # the first pod is preempted after this long
    node_loss_after_s: float | None = None  # the node of the first pod goes away
    # the first pod's container is OOM-killed once its log shows this text (a training step
    # that blows the memory limit: deterministic, however long the interpreter takes to start)
    oom_kill_after_log: str | None = None
    then: Fault | None = None  # what happens to the Job's next pod (default: nothing)


class SimulatedKubelet:
    def __init__(
        self,
        emulator: KubernetesEmulator,
        *,
        namespace: str = "default",
        start_delay_s: float = 0.0,
        faults: Callable[[Obj], Fault | None] | None = None,
        runtime: str = "process",
        trial_s: float = 0.0,
        grace_s: float = 2.0,
    ) -> None:
        if runtime not in ("process", "simulated"):
            raise ValueError(f"runtime must be 'process' or 'simulated', not {runtime!r}")
        self._api = emulator
        self._ns = namespace
        self._start_delay_s = start_delay_s
        self._faults = faults or (lambda job: None)
        self._runtime = runtime
        self._trial_s = trial_s
        self._grace_s = grace_s
        self._lock = threading.Lock()
        self._deleted: dict[str, threading.Event] = {}  # pod name -> deleted
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._workers: dict[str, tuple[list[threading.Thread], threading.Event]] = {}
        self._closed = threading.Event()
        self._logs = tempfile.TemporaryDirectory(prefix="simulated-kubelet-")
        self.pods_created = 0
        self.jobs_seen: list[str] = []

    def start(self) -> SimulatedKubelet:
        self._api.subscribe(self._on_change)
        return self

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            processes = list(self._processes.values())
            for event in self._deleted.values():
                event.set()
        for process in processes:
            _kill_group(process, signal.SIGKILL)
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        self._logs.cleanup()

    def __enter__(self) -> SimulatedKubelet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log(self, pod: str) -> str:
        """The container log of ``pod`` (what ``kubectl logs`` would show)."""
        path = Path(self._logs.name) / f"{pod}.log"
        return path.read_text() if path.exists() else ""

    # --- the Job controller --------------------------------------------------------------

    def _on_change(self, event: WatchEvent) -> None:
        namespace = event.obj["metadata"].get("namespace")
        if self._closed.is_set() or namespace != self._ns:
            return
        if event.resource == "jobs" and event.type == "ADDED":
            self.jobs_seen.append(event.obj["metadata"]["name"])
            threading.Thread(target=self._run_job, args=(event.obj,), daemon=True).start()
        elif event.resource == "pods" and event.type == "DELETED":
            with self._lock:
                deleted = self._deleted.get(event.obj["metadata"]["name"])
            if deleted is not None:
                deleted.set()

    def _run_job(self, job: Obj) -> None:
        fault = self._faults(job) or Fault()
        name = job["metadata"]["name"]
        started = time.monotonic()
        self._api.patch_status("jobs", self._ns, name, {"startTime": now_iso(), "active": 1})
        while not self._closed.is_set():
            verdict = self._run_pod(job, fault, started)
            fault = fault.then or Fault(start_delay_s=fault.start_delay_s)
            if verdict is None:  # the pod was deleted, or its pod was disrupted: say nothing
                if self._api.get("jobs", self._ns, name) is None:
                    return
                continue  # disrupted: podFailurePolicy Ignore -> a new pod
            kind, reason, message = verdict
            condition = {
                "type": kind, "status": "True", "reason": reason, "message": message,
                "lastTransitionTime": now_iso(),
            }  # fmt: skip
            counts = {"succeeded": 1} if kind == "Complete" else {"failed": 1}
            self._api.patch_status(
                "jobs", self._ns, name,
                {"conditions": [condition], "active": 0, "completionTime": now_iso(), **counts},
            )  # fmt: skip
            return

    def _run_pod(self, job: Obj, fault: Fault, job_started: float) -> tuple[str, str, str] | None:
        """Run one pod of the Job: the Job's verdict, or None (pod deleted or disrupted)."""
        meta, template = job["metadata"], job["spec"]["template"]
        pod_meta = template.get("metadata") or {}
        pod = self._api.create(
            "pods",
            self._ns,
            {
                "metadata": {
                    "generateName": f"{meta['name']}-",
                    "labels": {
                        **(pod_meta.get("labels") or {}),
                        "job-name": meta["name"],
                        "controller-uid": meta["uid"],
                    },
                    "annotations": dict(pod_meta.get("annotations") or {}),
                    "ownerReferences": [
                        {
                            "apiVersion": "batch/v1",
                            "kind": "Job",
                            "name": meta["name"],
                            "uid": meta["uid"],
                            "controller": True,
                        },
                    ],
                },
                "spec": template["spec"],
                "status": {"phase": "Pending"},
            },
        )
        self.pods_created += 1
        pod_name = pod["metadata"]["name"]
        deleted = threading.Event()
        with self._lock:
            self._deleted[pod_name] = deleted
        try:
            return self._lifecycle(job, pod_name, fault, job_started, deleted)
        finally:
            with self._lock:
                self._deleted.pop(pod_name, None)
                self._processes.pop(pod_name, None)
                worker = self._workers.pop(pod_name, None)
            if worker is not None:
                worker[1].set()

    def _lifecycle(
        self, job: Obj, pod: str, fault: Fault, job_started: float, deleted: threading.Event
    ) -> tuple[str, str, str] | None:
        container = job["spec"]["template"]["spec"]["containers"][0]
        if fault.unschedulable:
            self._pod_status(
                pod,
                conditions=[
                    _condition("PodScheduled", "False", "Unschedulable", fault.unschedulable)
                ],
            )
            self._event(pod, "FailedScheduling", fault.unschedulable)
            deleted.wait()
            return None
        self._pod_status(pod, conditions=[_condition("PodScheduled", "True")])
        if fault.image_pull_error:
            message = f'Back-off pulling image "{container["image"]}"'
            waiting = {"waiting": {"reason": "ImagePullBackOff", "message": message}}
            self._pod_status(pod, containerStatuses=[_container_status(container, waiting)])
            self._event(pod, "Failed", f'Failed to pull image "{container["image"]}": not found')
            deleted.wait()
            return None
        delay = self._start_delay_s if fault.start_delay_s is None else fault.start_delay_s
        if deleted.wait(delay):
            return None
        process = self._start(pod, container)
        self._pod_status(
            pod, phase="Running",
            containerStatuses=[_container_status(container, {"running": {"startedAt": now_iso()}})],
        )  # fmt: skip
        pod_started = time.monotonic()
        deadline = job["spec"].get("activeDeadlineSeconds")
        while True:
            code = (
                process.poll()
                if process is not None
                else self._simulated_exit(pod, container, pod_started)
            )
            if code is not None:
                return self._exited(pod, container, code)
            now = time.monotonic()
            tick = (
                0.05
                if process is not None or pod in self._workers
                else min(0.05, max(self._trial_s - (now - pod_started), 0.001))
            )
            if deleted.wait(tick):
                self._stop(process, graceful=True)
                return None
            if fault.preempt_after_s is not None and now - pod_started > fault.preempt_after_s:
                self._stop(process, graceful=False)
                self._pod_status(
                    pod, phase="Failed",
                    conditions=[_condition("DisruptionTarget", "True", "PreemptionByScheduler",
                                           "Preempted in order to admit critical pod")],
                )  # fmt: skip
                return None  # the Job ignores a disrupted pod and starts another
            if fault.node_loss_after_s is not None and now - pod_started > fault.node_loss_after_s:
                self._stop(process, graceful=False)
                message = "Node simulated-node-1 which was running the pod is unresponsive"
                self._pod_status(pod, phase="Failed", reason="NodeLost", message=message)
                return (
                    "Failed",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                )
            if fault.oom_kill_after_log is not None and fault.oom_kill_after_log in self.log(pod):
                self._stop(process, graceful=False)
                return self._exited(pod, container, 137, reason="OOMKilled")
            if deadline is not None and now - job_started > deadline:
                self._stop(process, graceful=True)
                self._pod_status(pod, phase="Failed", reason="DeadlineExceeded")
                return "Failed", "DeadlineExceeded", "Job was active longer than specified deadline"

    def _exited(
        self, pod: str, container: Obj, code: int, reason: str | None = None
    ) -> tuple[str, str, str]:
        code = 128 - code if code < 0 else code  # killed by signal N: the runtime says 128+N
        reason = reason or ("Completed" if code == 0 else "Error")
        state: Obj = {"exitCode": code, "reason": reason}
        if code != 0 and container.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            state["message"] = self.log(pod)[-2048:]  # the kubelet's cap is 2048 bytes
        terminated = {"terminated": state}
        self._pod_status(
            pod, phase="Succeeded" if code == 0 else "Failed",
            containerStatuses=[_container_status(container, terminated)],
        )  # fmt: skip
        if code == 0:
            return "Complete", "", ""
        rules = self._fail_job_codes(pod)
        if code in rules:
            return (
                "Failed",
                "PodFailurePolicy",
                f"Container trial for pod {pod} failed with exit code {code} matching FailJob rule",
            )
        return "Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit"

    def _fail_job_codes(self, pod: str) -> set[int]:
        obj = self._api.get("pods", self._ns, pod) or {}
        job_name = (obj.get("metadata", {}).get("labels") or {}).get("job-name", "")
        job = self._api.get("jobs", self._ns, job_name) or {}
        rules = (job.get("spec", {}).get("podFailurePolicy") or {}).get("rules") or []
        return {
            int(v)
            for rule in rules
            if rule.get("action") == "FailJob" and "onExitCodes" in rule
            for v in rule["onExitCodes"].get("values", [])
        }

    # --- the container runtime -----------------------------------------------------------

    def _start(self, pod: str, container: Obj) -> subprocess.Popen[bytes] | None:
        if self._runtime == "simulated":
            command = container.get("command", [])
            if command[:2] == ["kubetune", "worker"]:
                self._start_simulated_worker(pod, container)
            return None
        command = [*container.get("command", []), *container.get("args", [])]
        if command and command[0] == "kubetune":  # the simulated image's entry point
            command = [sys.executable, "-m", "kubetune", *command[1:]]
        env = {k: os.environ[k] for k in ("PATH", "PYTHONPATH", "LANG") if k in os.environ}
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        env.update(
            {e["name"]: str(e.get("value", "")) for e in container.get("env", []) if "value" in e}
        )
        env["TMPDIR"] = env["HOME"] = tempfile.gettempdir()  # no emptyDir here: the host's tmp
        with open(Path(self._logs.name) / f"{pod}.log", "wb") as log:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env, cwd=self._logs.name, start_new_session=True,
            )  # fmt: skip
        with self._lock:
            self._processes[pod] = process
        return process

    def _start_simulated_worker(self, pod: str, container: Obj) -> None:
        command = container["command"]
        env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
        base = env["KUBETUNE_REPORT_URL"].rsplit("/v1/", 1)[0]
        worker = command[command.index("--worker") + 1]
        slots = int(command[command.index("--slots") + 1])
        stop = threading.Event()
        threads = [
            threading.Thread(
                target=self._simulated_slot,
                args=(base, env["KUBETUNE_REPORT_TOKEN"], f"{worker}/{slot}", stop),
                daemon=True,
            )
            for slot in range(slots)
        ]
        with self._lock:
            self._workers[pod] = (threads, stop)
        for thread in threads:
            thread.start()

    def _simulated_slot(self, base: str, token: str, worker: str, stop: threading.Event) -> None:
        """One worker process of a simulated ``kubetune worker`` pod."""
        from kubetune.core.trial import TrialOutcome, TrialStatus
        from kubetune.storage import open_object

        def post(path: str, body: Obj) -> Obj:
            request = urllib.request.Request(  # noqa: S310 - the controller's loopback URL
                base + path, data=json.dumps(body).encode(), method="POST",
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )  # fmt: skip
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                answer: Obj = json.loads(response.read())
                return answer

        while not stop.is_set():
            try:
                answer = post("/v1/work", {"worker": worker})
            except OSError:
                return  # the controller is gone
            trial = answer.get("trial")
            if answer.get("stop"):
                return
            if trial is None or stop.wait(self._trial_s):
                continue
            outcome = TrialOutcome(TrialStatus.COMPLETED, value=0.5, metrics={"value": 0.5},
                                   duration_s=self._trial_s)  # fmt: skip
            store, key = open_object(trial["result"])
            store.put_bytes(key, json.dumps(outcome.to_dict()).encode())
            with contextlib.suppress(OSError):
                post("/v1/done", {"worker": worker, **{k: trial[k] for k in ("number", "attempt")}})

    def _simulated_exit(self, pod: str, container: Obj, started: float) -> int | None:
        with self._lock:
            worker = self._workers.get(pod)
        if worker is not None:  # a simulated worker pod ends when its slots have stopped
            return None if any(t.is_alive() for t in worker[0]) else 0
        if time.monotonic() - started < self._trial_s:
            return None
        from kubetune.core.trial import TrialOutcome, TrialStatus
        from kubetune.storage import open_object

        command = container.get("command", [])
        output = command[command.index("--output") + 1]
        outcome = TrialOutcome(TrialStatus.COMPLETED, value=0.5, metrics={"value": 0.5},
                               duration_s=self._trial_s)  # fmt: skip
        store, key = open_object(output)
        store.put_bytes(key, json.dumps(outcome.to_dict()).encode())
        return 0

    def _stop(self, process: subprocess.Popen[bytes] | None, *, graceful: bool) -> None:
        if process is None:
            return
        if graceful:  # SIGTERM, then SIGKILL after the grace period, as the kubelet does
            _kill_group(process, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=self._grace_s)
                return
        _kill_group(process, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)

    # --- status writes -------------------------------------------------------------------

    def _pod_status(self, pod: str, **status: Any) -> None:
        self._api.patch_status("pods", self._ns, pod, status)

    def _event(self, pod: str, reason: str, message: str) -> None:
        self._api.create(
            "events",
            self._ns,
            {
                "metadata": {"generateName": f"{pod}."},
                "involvedObject": {"kind": "Pod", "name": pod, "namespace": self._ns},
                "reason": reason,
                "message": message,
                "type": "Warning",
            },
        )


def _condition(kind: str, status: str, reason: str = "", message: str = "") -> Obj:
    return {"type": kind, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": now_iso()}  # fmt: skip


def _container_status(container: Obj, state: Obj) -> Obj:
    return {"name": container["name"], "image": container["image"], "imageID": "", "state": state,
            "ready": "running" in state, "restartCount": 0}  # fmt: skip


def _kill_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)
