"""``executor: {kind: kubernetes, mode: worker-pool}``: warm worker pods.

N long-lived pods (one Job each, see :func:`build_worker_job`) run ``kubetune worker``,
which asks this controller for a trial, runs it in-process through the same code path as
``kubetune trial`` (data loaded once per worker), reports over HTTP (pruning works) and
writes its result to the object store, then asks again. Pod start, image pull, CUDA
initialisation and data loading are paid once per pod, not once per trial.

With ``trials_per_gpu: k`` a pod runs k worker processes sharing its GPU(s): the pool's
capacity is ``workers x k`` (at most ``limits.parallel``).

Failures: a worker process that dies is restarted by its pod's supervisor, whose next
work request says so (the trial fails by the exit code); a pod that is replaced or a Job
that fails or disappears fails its in-flight trials as infrastructure and is replaced by
a Job of the next generation. Stopping one trial (cancel, deadline) deletes its pod: code
running in-process can only be stopped with its process. A restarted controller adopts
the worker Jobs it finds and the trials they run (from the assignment record each trial
leaves in the store); finished trials are read from their results, never run again.

The Kubernetes API going away stops little here: workers ask for trials and hand in results
over HTTP to this controller, not through the API, so trials go on being run and recorded.
Only what needs the API waits until it answers again: no worker Job is judged (ended,
vanished, past a deadline) from a cache that may be stale, a worker Job's create is tried
again with doubling waits, and past ``executor.api_outage_s`` the run ends with one error,
leaving the workers to finish their trials and wait for the next run, which adopts them.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Unpack

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from kubetune.core.executor import ExecutorEvent, FinishedEvent
from kubetune.core.trial import TrialFailure, TrialOutcome, TrialRequest, outcome_from_exit
from kubetune.executors.kubernetes.cluster import (
    UNAVAILABLE,
    ClusterArgs,
    ClusterExecutor,
    CreateRetry,
    api_reason,
    refused,
)
from kubetune.executors.kubernetes.informer import Informer
from kubetune.executors.kubernetes.job import WorkerJob, build_worker_job, selector_labels
from kubetune.executors.kubernetes.naming import LABEL_WORKER, job_name, worker_job_name
from kubetune.executors.kubernetes.pods import job_condition, waiting_reason
from kubetune.executors.kubernetes.work_queue import (
    DONE_PATH,
    WORK_PATH,
    Assignment,
    WorkEvent,
    WorkQueue,
)

__all__ = ["WorkerPoolExecutor"]

_log = logging.getLogger(__name__)
_GENERATION = re.compile(r"-g(\d+)$")
# A created worker Job not seen by the watch after this long was lost: create another.
_UNSEEN_S = 60.0


@dataclass
class _Trial:
    request: TrialRequest
    name: str  # its folder in the store (the Job name it would have in job-per-trial mode)
    started: float | None = None  # adopted trials: counted from adoption


class WorkerPoolExecutor(ClusterExecutor):
    LEFT_RUNNING = (
        "its worker pods finish the trials they run and wait for a controller"
        " (executor.worker_idle_timeout_s); running the experiment again adopts them"
    )

    def __init__(self, **kwargs: Unpack[ClusterArgs]) -> None:
        # the report server also speaks the worker protocol (the queue wakes poll through
        # the base's event, which exists before the server takes its first request)
        self._queue = WorkQueue(self._record, self._changed)
        super().__init__(
            **kwargs,
            routes={WORK_PATH: self._queue.handle_work, DONE_PATH: self._queue.handle_done},
        )
        self._slots = self._options.trials_per_gpu
        self._pods = self._options.workers or math.ceil(self._capacity / self._slots)
        # never more than limits.parallel at once, even with spare worker slots
        self._capacity = min(self._capacity, self._pods * self._slots)
        self._trials: dict[int, _Trial] = {}
        self._ready: list[FinishedEvent] = []
        self._study: str | None = None
        self._jobs: Informer | None = None
        self._generation: dict[int, int] = {}  # worker index -> newest generation known
        self._created: dict[int, tuple[str, float]] = {}  # index -> (name, when), not yet seen
        self._create_retry: dict[int, CreateRetry] = {}  # index -> its create's next try
        self._deleted: set[str] = set()
        self._selector = ""  # set by _start: this study's worker Jobs and pods
        self._stuck_since = time.monotonic()  # trials queued and no worker has checked in

    @property
    def worker_jobs(self) -> list[str]:
        """The names of the live worker Jobs (for tests and progress output)."""
        if self._jobs is None:
            return []
        return sorted(j["metadata"]["name"] for j in self._jobs.items() if job_condition(j) is None)

    # --- the pool ------------------------------------------------------------------------

    def _start(self, study: str) -> None:
        """Watch this study's worker Jobs and bring the pool up (once: it needs the study)."""
        if self._jobs is not None:
            return
        self._study = study
        labels = {
            **selector_labels(self._experiment, study),
            "app.kubernetes.io/component": "worker",
        }
        self._selector = selector = ",".join(f"{k}={v}" for k, v in labels.items())
        jobs = Informer(
            self._api.list_namespaced_job, self._namespace, selector, self._changed,
            watch_timeout_s=self._options.watch_timeout_s, kind="worker jobs",
        )  # fmt: skip
        self._start_informer(jobs)
        self._jobs = jobs
        self._keep_pool()

    def _keep_pool(self) -> None:
        """One live Job per worker index: finished ones are deleted and replaced by the
        next generation; a Job just created is waited for until the watch shows it."""
        jobs, study = self._pool()
        if not jobs.healthy:
            return  # the cache may be stale: no replacement on a guess
        live: set[int] = set()
        for job in jobs.items():
            name = job["metadata"]["name"]
            index = int((job["metadata"].get("labels") or {}).get(LABEL_WORKER, -1))
            match = _GENERATION.search(name)
            if match and index >= 0:
                self._generation[index] = max(self._generation.get(index, 0), int(match[1]))
            if job_condition(job) is None:
                live.add(index)
            elif name not in self._deleted:
                self._deleted.add(name)  # its trials are failed by _check; free the node
                self._delete(name)
        now = time.monotonic()
        for index in range(self._pods):
            created = self._created.get(index)
            if index in live:
                self._created.pop(index, None)
                continue
            if (
                created is not None
                and jobs.get(created[0]) is None
                and now - created[1] < _UNSEEN_S
            ):
                continue  # created, not in the watch yet
            retry = self._create_retry.setdefault(index, CreateRetry())
            if retry.due(now):
                self._create_worker(index, study, retry, now)

    def _pool(self) -> tuple[Informer, str]:
        if self._jobs is None or self._study is None:  # _start runs before anything else
            raise RuntimeError("the worker pool is not started yet")
        return self._jobs, self._study

    def _create_worker(self, index: int, study: str, retry: CreateRetry, now: float) -> None:
        """Create the next generation of worker ``index``. While the API cannot be reached
        it is tried again after a doubling wait (a repeated create is safe: the name is
        deterministic, 409 means it is there); the outage bound counts from the first miss."""
        generation = self._generation.get(index, 0) + 1
        name = worker_job_name(self._experiment, study, index, generation)
        manifest = build_worker_job(
            self._options,
            WorkerJob(
                name=name, experiment=self._experiment, study=study, index=index,
                report_url=self._report_url, report_token=self._server.channel().token,
                slots=self._slots, idle_timeout_s=self._options.worker_idle_timeout_s,
            ),
        )  # fmt: skip
        try:
            self._api.create_namespaced_job(self._namespace, manifest, _request_timeout=30)
        except ApiException as exc:
            if exc.status in UNAVAILABLE:
                return self._create_failed(name, retry, now, api_reason(exc))
            self._create_answered()
            if exc.status != 409:  # 409: it exists already (adopted)
                refused(exc, f"worker Job {name}")  # wrong options or permissions: stop
                # anything else (a full quota): the API answered; try again after a wait
                _log.warning("cannot create worker Job %s: %s", name, api_reason(exc))
                retry.later(now)
                return
        except (HTTPError, OSError) as exc:
            return self._create_failed(name, retry, now, type(exc).__name__)
        self._create_answered()
        self._generation[index] = generation
        self._created[index] = (name, now)
        self._create_retry.pop(index, None)

    def _record(self, assignment: Assignment) -> None:
        """Before a worker gets a trial (server thread): the durable assignment record."""
        _, study = self._pool()
        name = job_name(self._experiment, study, assignment.number, assignment.attempt)
        self._files.write_assignment(name, assignment.worker, assignment.ask)

    # --- submit and events ---------------------------------------------------------------

    def submit(self, request: TrialRequest) -> None:
        self._start(request.study)
        name = job_name(self._experiment, request.study, request.number, request.attempt)
        request = replace(request, spec=request.spec or self._spec_data)
        if request.spec_dir is None:
            request = replace(request, spec_dir=self._spec_dir)
        self._files.write_request(name, request)
        self._trials[request.number] = _Trial(request, name)
        self._server.expect(request.number, request.attempt)
        self._queue.put(request.number, request.attempt, self._work_item(request, name))

    def _work_item(self, request: TrialRequest, name: str) -> dict[str, Any]:
        """What a worker is sent for a trial (the protocol's ``trial``)."""
        return {
            "number": request.number,
            "attempt": request.attempt,
            "request": self._files.request_uri(name),
            "result": self._files.result_uri(name),
        }

    def poll(self, timeout: float) -> list[ExecutorEvent]:
        deadline = time.monotonic() + timeout
        while True:
            self._wake.clear()
            events: list[ExecutorEvent] = list(self._ready)
            self._ready.clear()
            while not self._server.events.empty():
                report = self._server.events.get_nowait()
                if report.number in self._trials:
                    events.append(report)
            while not self._queue.events.empty():
                finished = self._settle(self._queue.events.get_nowait())
                if finished is not None:
                    events.append(finished)
            if self._jobs is not None:
                now = time.monotonic()
                self._check_api(now, (self._jobs,))
                events.extend(self._check(now))
                events.extend(self._check_stuck(now))
                self._keep_pool()
            left = deadline - time.monotonic()
            if events or left <= 0:
                return events
            self._wake.wait(min(0.05, left))

    def _settle(self, event: WorkEvent) -> FinishedEvent | None:
        trial = self._trials.get(event.assignment.number)
        if trial is None or trial.request.attempt != event.assignment.attempt:
            return None
        result = self._files.read_result(trial.name)
        if event.kind == "done":
            outcome = result or TrialOutcome.failed(
                TrialFailure.INFRASTRUCTURE,
                f"worker {event.assignment.worker} finished the trial but left no result",
            )
        elif event.exit_code is not None:
            worker = f"worker {event.assignment.worker}"
            outcome = outcome_from_exit(event.exit_code, result, worker)
        else:
            outcome = result or TrialOutcome.failed(
                TrialFailure.INFRASTRUCTURE,
                f"the pod of worker {event.assignment.worker} was replaced while running the trial",
            )
        return FinishedEvent(trial.request.number, self._done(trial, outcome))

    def _check(self, now: float) -> list[FinishedEvent]:
        """Trials whose worker Job ended or vanished; trials past their deadline. Nothing is
        judged while the watch is down: its cache may be stale, and stopping a trial past its
        deadline needs the API (its worker pod is deleted) as much as seeing it end."""
        jobs, _ = self._pool()
        events: list[FinishedEvent] = []
        if not jobs.healthy:
            return events
        for assignment in self._queue.assignments():
            trial = self._trials.get(assignment.number)
            if trial is None:
                continue
            job = jobs.get(assignment.job)
            outcome: TrialOutcome | None = None
            if job is None and assignment.job not in self._pending_names():
                outcome = self._lost(trial, f"worker Job {assignment.job} disappeared")
            elif job is not None and (ended := job_condition(job)) is not None:
                detail = f"{ended[1]}: {ended[2]}".strip(": ")
                why = f"the pod of worker Job {assignment.job} ended ({detail})"
                outcome = self._lost(trial, why)
            else:
                started = self._server.started_at(trial.request.number) or trial.started
                limit = trial.request.deadline_s
                if started is not None and limit is not None and now - started > limit:
                    self._delete(assignment.job)  # in-process code stops with its process
                    outcome = TrialOutcome.failed(
                        TrialFailure.DEADLINE,
                        f"trial exceeded its deadline of {limit:g}s; its worker pod"
                        f" {assignment.job} was stopped and will be replaced",
                    )
            if outcome is not None:
                events.append(FinishedEvent(trial.request.number, self._done(trial, outcome)))
        return events

    def _check_stuck(self, now: float) -> list[FinishedEvent]:
        """Queued trials are not waited on forever: when no worker pod has ever asked for
        work within ``pending_timeout_s``, they fail as infrastructure failures with the
        reason the pods give (one list of pods)."""
        waiting = self._queue.waiting()
        jobs, _ = self._pool()
        # while the API cannot be reached, the outage bound (_check_api) governs instead
        if not waiting or self._queue.checked_in or not jobs.healthy:
            self._stuck_since = now
            return []
        limit = self._options.pending_timeout_s
        if now - self._stuck_since <= limit:
            return []
        self._stuck_since = now
        message = f"no worker pod started within {limit:g}s: {self._why_pending()}"
        events = []
        for number in waiting:
            trial = self._trials.get(number)
            if trial is not None:
                outcome = TrialOutcome.failed(TrialFailure.INFRASTRUCTURE, message)
                events.append(FinishedEvent(number, self._done(trial, outcome)))
        return events

    def _why_pending(self) -> str:
        try:
            pods = self._core.list_namespaced_pod(
                self._namespace, label_selector=self._selector, _request_timeout=30
            )
        except (ApiException, HTTPError, OSError) as exc:
            return f"cannot list the worker pods ({exc})"
        raw = [self._api_client.sanitize_for_serialization(p) for p in pods.items]
        reasons = [waiting_reason(pod) for pod in raw]
        return "; ".join(dict.fromkeys(r for r in reasons if r)) or "no reason given by the pods"

    def _pending_names(self) -> set[str]:
        return {name for name, _ in self._created.values()}

    def _lost(self, trial: _Trial, why: str) -> TrialOutcome:
        # it may have written its result just before its pod went
        return self._files.read_result(trial.name) or TrialOutcome.failed(
            TrialFailure.INFRASTRUCTURE, why
        )

    def _done(self, trial: _Trial, outcome: TrialOutcome) -> TrialOutcome:
        del self._trials[trial.request.number]
        self._queue.remove(trial.request.number)
        self._server.forget(trial.request.number)
        return outcome

    # --- recovery ------------------------------------------------------------------------

    def recover(self, running: Sequence[TrialRequest]) -> list[int]:
        """Adopt the pool a previous controller left: its worker Jobs are found by the watch
        (none is created twice), and each RUNNING trial is recorded from its result, or
        followed again if the worker its assignment record names is still alive."""
        if not running:
            return []
        self._start(running[0].study)
        jobs, _ = self._pool()
        adopted: list[int] = []
        for request in running:
            name = job_name(self._experiment, request.study, request.number, request.attempt)
            result = self._files.read_result(name)
            if result is not None:
                self._ready.append(FinishedEvent(request.number, result))
                adopted.append(request.number)
                continue
            record = self._files.read_assignment(name)
            job = jobs.get(record[0].rsplit("/", 1)[0]) if record else None
            if record is None or job is None or job_condition(job) is not None:
                continue  # not running anywhere: the loop retries it
            worker, ask = record
            self._trials[request.number] = _Trial(request, name, started=time.monotonic())
            self._server.expect(request.number, request.attempt)
            self._queue.adopt(
                Assignment(request.number, request.attempt, worker, ask),
                self._work_item(request, name),
            )
            adopted.append(request.number)
        return adopted

    # --- answers, cancel, close ----------------------------------------------------------

    def answer(self, number: int, prune: bool) -> None:
        self._server.answer(number, prune)

    def cancel(self, number: int, reason: str) -> None:
        trial = self._trials.get(number)
        if trial is None:
            return
        assignment = self._queue.assignment(number)
        if assignment is not None:
            self._delete(assignment.job)
        outcome = TrialOutcome.failed(TrialFailure.CANCELLED, reason)
        self._ready.append(FinishedEvent(number, self._done(trial, outcome)))

    def close(self) -> None:
        # After an outage the API cannot take the deletes: the workers are left waiting for
        # the next run (which adopts them) instead of being told to stop.
        if not self._api_lost:
            self._queue.stop()  # idle workers are told to stop; then their Jobs go
        if self._jobs is not None:
            for job in [] if self._api_lost else self._jobs.items():
                self._delete(job["metadata"]["name"])
            self._jobs.stop()
        self._trials.clear()
        self._server.close()
        self._api_client.close()
