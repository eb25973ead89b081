"""``executor: {kind: kubernetes}``: one ``batch/v1`` Job per trial attempt.

Per attempt: the request goes to the object store, one Job is created (its name is
deterministic, so a restarted controller adopts it), its pod runs ``kubetune trial``,
reports intermediate values to this controller over HTTP (:class:`ReportServer`, the same
channel as the subprocess executor) and writes its result to the object store. Job and
pod states come from two watches (:class:`Informer`), never from polling each Job: a trial
costs one ``create`` request, plus one ``delete`` when it is stopped early, plus one
``list events`` when its pod is stuck.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Unpack

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from kubetune.core.executor import Executor, ExecutorContext, ExecutorEvent, FinishedEvent
from kubetune.core.trial import (
    TrialFailure,
    TrialOutcome,
    TrialRequest,
    TrialStatus,
    outcome_from_exit,
)
from kubetune.errors import SpecError, StorageError
from kubetune.executors.kubernetes.client import connect
from kubetune.executors.kubernetes.cluster import (
    UNAVAILABLE,
    ClusterArgs,
    ClusterExecutor,
    CreateRetry,
    api_reason,
    refused,
    report_token,
    report_url,
)
from kubetune.executors.kubernetes.informer import Informer
from kubetune.executors.kubernetes.job import TrialJob, build_job, selector_labels
from kubetune.executors.kubernetes.naming import LABEL_ATTEMPT, LABEL_TRIAL, job_name
from kubetune.executors.kubernetes.options import KubernetesOptions
from kubetune.executors.kubernetes.pods import (
    disrupted,
    job_condition,
    pod_end,
    running,
    waiting_reason,
)
from kubetune.storage import path_to_uri

if TYPE_CHECKING:
    from kubetune.executors.kubernetes.pool import WorkerPoolExecutor

# api_reason, report_token, report_url: re-exported from .cluster, where they now live
__all__ = ["KubernetesExecutor", "api_reason", "report_token", "report_url"]

_log = logging.getLogger(__name__)
# After a Job is seen finished, how long to wait for its pod's final status (two watches
# deliver independently) before judging by the Job alone.
_POD_STATUS_WAIT_S = 5.0
# A created Job not seen by the watch after this long was lost (deleted at once).
_UNSEEN_S = 60.0


@dataclass
class _Trial:
    request: TrialRequest
    name: str
    submitted: float
    seen: bool = False  # the watch has shown the Job at least once
    # when its code started, if the report server cannot say (an adopted trial: counted
    # from its adoption, so it gets its whole deadline again; activeDeadlineSeconds holds)
    started: float | None = None
    running_since: float | None = None  # a container first ran (pod watch)
    # since when no pod of the Job runs (None while one does): a replacement pod of a
    # preempted one can be stuck pending as well as the first
    pending_since: float | None = None
    result_written: bool = False  # seen in the store while the Job was not finished yet
    finished_since: float | None = None  # the Job finished; waiting for the pod's status
    # the Job to create while the API cannot be reached (None once it was created)
    manifest: dict[str, Any] | None = None
    create: CreateRetry = field(default_factory=CreateRetry)  # while the API is out of reach


class KubernetesExecutor(ClusterExecutor):
    @classmethod
    def from_context(cls, options: dict[str, Any], context: ExecutorContext) -> Executor:
        parsed = KubernetesOptions.parse(options)
        spec = context.spec
        trials_uri = parsed.trials_uri or (
            path_to_uri(context.work_dir) if context.work_dir is not None else None
        )
        if trials_uri is None:
            raise SpecError(
                "executor.trials_uri: required (an object-store URI the trial pods can write"
                " their results to, e.g. s3://bucket/kubetune/trials)"
            )
        if parsed.trials_uri is None:
            _log.warning(
                "executor.trials_uri is not set: trial pods must see %s (a shared volume);"
                " set it to an object store (s3://...) in a cluster",
                trials_uri,
            )
        api, namespace = connect(parsed)
        executor_class: type[KubernetesExecutor] | type[WorkerPoolExecutor] = cls
        if parsed.mode == "worker-pool":
            from kubetune.executors.kubernetes.pool import WorkerPoolExecutor

            executor_class = WorkerPoolExecutor
        return executor_class(
            options=parsed,
            api_client=api,
            namespace=namespace,
            experiment=spec.name,
            spec_data=spec.model_dump(mode="json", exclude_none=True),
            spec_dir=str(spec.base_dir),
            capacity=spec.limits.parallel,
            trials_uri=trials_uri,
            token_dir=context.work_dir,
        )

    def __init__(self, **kwargs: Unpack[ClusterArgs]) -> None:
        super().__init__(**kwargs)
        self._trials: dict[int, _Trial] = {}
        self._ready: list[FinishedEvent] = []
        self._selector: str | None = None  # set on first use: it names the study
        self._jobs: Informer | None = None
        self._pods: Informer | None = None

    # --- watches -------------------------------------------------------------------------

    def _watch(self, study: str) -> None:
        """Start the Job and Pod watches of this study (once; they need the study name)."""
        if self._jobs is not None:
            return
        labels = selector_labels(self._experiment, study)
        self._selector = ",".join(f"{k}={v}" for k, v in labels.items())
        timeout = self._options.watch_timeout_s
        self._jobs = Informer(
            self._api.list_namespaced_job, self._namespace, self._selector,
            self._changed, watch_timeout_s=timeout, kind="jobs",
        )  # fmt: skip
        self._pods = Informer(
            self._core.list_namespaced_pod, self._namespace, self._selector,
            self._changed, watch_timeout_s=timeout, kind="pods", index_label="job-name",
        )  # fmt: skip
        try:
            self._start_informer(self._jobs)
            self._start_informer(self._pods)
        except BaseException:
            self._jobs.stop()
            self._jobs = self._pods = None
            raise

    def _pods_of(self, trial: _Trial) -> list[dict[str, Any]]:
        if self._pods is None:  # set by _watch before any trial is followed
            raise RuntimeError("pods are not being watched yet")
        return self._pods.indexed(trial.name)

    # --- submit --------------------------------------------------------------------------

    def submit(self, request: TrialRequest) -> None:
        if len(self._trials) >= self._capacity:
            raise RuntimeError("all slots are busy; the loop must respect capacity")
        self._watch(request.study)
        name = job_name(self._experiment, request.study, request.number, request.attempt)
        full = replace(request, spec=self._spec_data, spec_dir=self._spec_dir)
        submitted = time.monotonic()
        trial = _Trial(request, name, submitted, pending_since=submitted)
        try:
            self._files.write_request(name, full)
        except (OSError, StorageError) as exc:  # this trial fails (and is retried), not the run
            return self._finish_now(
                trial, TrialFailure.INFRASTRUCTURE, f"cannot write the trial request: {exc}"
            )
        manifest = build_job(
            self._options,
            TrialJob(
                name=name,
                experiment=self._experiment,
                study=request.study,
                number=request.number,
                attempt=request.attempt,
                request_uri=self._files.request_uri(name),
                result_uri=self._files.result_uri(name),
                deadline_s=request.deadline_s,
                report_url=self._report_url,
                report_token=self._server.channel().token,
            ),
        )
        self._server.expect(request.number, request.attempt)
        trial.manifest = manifest
        self._track(trial)
        self._create(trial, submitted)

    def _create(self, trial: _Trial, now: float) -> None:
        """Create the trial's Job. While the API cannot be reached the trial waits and the
        create is tried again from :meth:`poll` (the deterministic name makes a create whose
        answer was lost safe to repeat: 409 means it is there); refused, the trial fails."""
        if trial.manifest is None:
            return
        try:
            self._api.create_namespaced_job(self._namespace, trial.manifest, _request_timeout=30)
        except ApiException as exc:
            if exc.status in UNAVAILABLE:
                return self._create_failed(trial.name, trial.create, now, api_reason(exc))
            self._create_answered()
            if exc.status != 409:  # 409: this attempt's Job exists already: adopt it
                del self._trials[trial.request.number]
                self._server.forget(trial.request.number)
                # the options or permissions are wrong: stop the run
                refused(exc, f"trial Job {trial.name}")
                return self._finish_now(
                    trial,
                    TrialFailure.INFRASTRUCTURE,
                    f"cannot create Job {trial.name}: {api_reason(exc)}",
                )
            _log.info("Job %s exists already; adopting it", trial.name)
        except (HTTPError, OSError) as exc:
            return self._create_failed(trial.name, trial.create, now, type(exc).__name__)
        self._create_answered()
        trial.manifest = None
        trial.submitted = now  # the unseen-Job clock starts when it was created

    def _track(self, trial: _Trial) -> None:
        self._trials[trial.request.number] = trial

    def _finish_now(self, trial: _Trial, failure: TrialFailure, message: str) -> None:
        self._ready.append(
            FinishedEvent(trial.request.number, TrialOutcome.failed(failure, message))
        )

    # --- events --------------------------------------------------------------------------

    def poll(self, timeout: float) -> list[ExecutorEvent]:
        deadline = time.monotonic() + timeout
        while True:
            self._wake.clear()
            events: list[ExecutorEvent] = list(self._ready)
            self._ready.clear()
            events.extend(self._drain_reports())
            now = time.monotonic()
            self._check_api(now, (self._jobs, self._pods))
            for trial in list(self._trials.values()):
                if trial.manifest is not None:  # not created yet: the API was unreachable
                    if trial.create.due(now):
                        self._create(trial, now)
                    continue
                outcome = self._check(trial, now)
                if outcome is not None:
                    events.append(FinishedEvent(trial.request.number, self._done(trial, outcome)))
            left = deadline - time.monotonic()
            if events or left <= 0:
                return events
            # Woken by a watch change; reports arrive on the server's queue: short slices.
            self._wake.wait(min(0.05, left))

    def _drain_reports(self) -> list[ExecutorEvent]:
        events: list[ExecutorEvent] = []
        while True:
            try:
                event = self._server.events.get_nowait()
            except queue.Empty:
                return events
            if event.number in self._trials:
                events.append(event)

    def _check(self, trial: _Trial, now: float) -> TrialOutcome | None:
        """The trial's outcome once it is over, from the cached Job and pods; None while it
        runs. Stops (deletes) a trial past its deadline or stuck pending."""
        if self._jobs is None:  # set by _watch before any trial is followed
            raise RuntimeError("jobs are not being watched yet")
        if not (self._jobs.healthy and self._pods is not None and self._pods.healthy):
            # The cache may be stale until the watches list again (an API outage): judge
            # nothing, stop nothing (a stop could not reach the API either); the Jobs'
            # activeDeadlineSeconds still holds, and the outage is bounded by _check_api.
            return None
        job = self._jobs.get(trial.name)
        if job is None:
            if trial.seen or now - trial.submitted > _UNSEEN_S:
                return TrialOutcome.failed(
                    TrialFailure.INFRASTRUCTURE,
                    f"Job {trial.name} disappeared (deleted outside kubetune, or lost)",
                )
            return None
        trial.seen = True
        finished = job_condition(job)
        pods = self._pods_of(trial)
        if finished is not None:
            return self._judge(trial, finished, pods, now)
        if any(running(p) and not disrupted(p) for p in pods):
            trial.running_since = trial.running_since or now
            trial.pending_since = None
        elif trial.pending_since is None:
            trial.pending_since = now
        started = trial.started or self._server.started_at(trial.request.number)
        limit = trial.request.deadline_s
        if started is not None and limit is not None and now - started > limit:
            # Its code may have ended in time, with the pod's exit and the Job's status still
            # on their way: a written result says so (read once; not there: stop it now).
            in_grace = now - started - limit <= self.cancel_grace_s
            if in_grace and (trial.result_written or self._files.read_result(trial.name)):
                trial.result_written = True
                return None
            return self._stop(
                trial,
                TrialFailure.DEADLINE,
                f"trial exceeded its deadline of {limit:g}s and was stopped",
            )
        allowance = self._options.startup_allowance_s
        if (
            started is None
            and trial.running_since is not None
            and now - trial.running_since > allowance
        ):
            return self._stop(
                trial,
                TrialFailure.INFRASTRUCTURE,
                f"the trial in Job {trial.name} did not start within {allowance:g}s"
                " of its container's start",
            )
        pending = trial.pending_since
        if pending is not None and now - pending > self._options.pending_timeout_s:
            return self._stop(trial, TrialFailure.INFRASTRUCTURE, self._why_pending(trial, pods))
        return None

    def _judge(
        self, trial: _Trial, finished: tuple[str, str, str], pods: list[dict[str, Any]], now: float
    ) -> TrialOutcome | None:
        kind, reason, message = finished
        result = self._files.read_result(trial.name)
        if kind == "Complete":
            return outcome_from_exit(0, result)
        if reason == "DeadlineExceeded":
            return TrialOutcome.failed(
                TrialFailure.DEADLINE,
                f"Job {trial.name} exceeded its activeDeadlineSeconds: {message}",
            )
        end = pod_end(pods)
        if end is None and trial.finished_since is None:
            trial.finished_since = now
        if end is None and now - (trial.finished_since or now) < _POD_STATUS_WAIT_S:
            return None  # the pod watch has not caught up yet
        if end is not None and end.exit_code is not None:
            return outcome_from_exit(end.exit_code, result, end.message)
        if result is not None:  # it wrote a result, then its pod went away
            return result
        detail = end.message if end is not None else f"{reason}: {message}".strip(": ")
        return TrialOutcome.failed(
            TrialFailure.INFRASTRUCTURE, f"the pod of Job {trial.name} was lost ({detail})"
        )

    def _why_pending(self, trial: _Trial, pods: list[dict[str, Any]]) -> str:
        """Why the trial never ran: the pod's conditions and, once, its (or the Job's) events."""
        waited = f"{self._options.pending_timeout_s:g}s"
        reasons = [r for r in (waiting_reason(p) for p in pods) if r]
        involved = pods[-1]["metadata"]["name"] if pods else trial.name
        events = self._events(involved)
        what = (
            "; ".join(dict.fromkeys([*reasons, *events]))
            or "no pod was created and no event explains why"
        )
        return f"Job {trial.name} did not start running within {waited}: {what}"

    def _events(self, name: str) -> list[str]:
        try:
            listed = self._core.list_namespaced_event(
                self._namespace, field_selector=f"involvedObject.name={name}", _request_timeout=30
            )
        except (ApiException, HTTPError, OSError):
            return []
        warnings = [e for e in listed.items if e.type != "Normal"] or listed.items
        return [f"{e.reason}: {e.message}" for e in warnings[-3:]]

    def _stop(self, trial: _Trial, failure: TrialFailure, message: str) -> TrialOutcome:
        self._delete(trial.name)
        return TrialOutcome.failed(failure, message)

    def _done(self, trial: _Trial, outcome: TrialOutcome) -> TrialOutcome:
        del self._trials[trial.request.number]
        self._server.forget(trial.request.number)
        if outcome.status is TrialStatus.PRUNED:
            self._delete(trial.name)  # free its node now, not after ttlSecondsAfterFinished
        return outcome

    # --- recovery ------------------------------------------------------------------------

    def recover(self, running: Sequence[TrialRequest]) -> list[int]:
        """Adopt the Jobs a previous controller created for trials still RUNNING in storage;
        a trial whose Job is gone but left a result is recorded from it. Jobs of this study
        that no such trial owns are deleted (their trials were settled or will be retried)."""
        if not running:
            return []
        self._watch(running[0].study)
        if self._jobs is None:  # set by _watch before any trial is followed
            raise RuntimeError("jobs are not being watched yet")
        adopted: list[int] = []
        owned: set[str] = set()
        for request in running:
            name = job_name(self._experiment, request.study, request.number, request.attempt)
            if self._jobs.get(name) is not None:
                owned.add(name)
                self._server.expect(request.number, request.attempt)
                now = time.monotonic()
                self._track(_Trial(request, name, now, seen=True, started=now))
                adopted.append(request.number)
                continue
            result = self._files.read_result(name)
            if result is not None:
                self._ready.append(FinishedEvent(request.number, result))
                adopted.append(request.number)
        for job in self._jobs.items():
            name = job["metadata"]["name"]
            labels = job["metadata"].get("labels") or {}
            if name not in owned and job_condition(job) is None and LABEL_TRIAL in labels:
                _log.info(
                    "deleting Job %s (trial %s attempt %s): no running trial owns it",
                    name, labels.get(LABEL_TRIAL), labels.get(LABEL_ATTEMPT),
                )  # fmt: skip
                self._delete(name)
        return adopted

    # --- answers, cancel, close ----------------------------------------------------------

    def answer(self, number: int, prune: bool) -> None:
        # a pruned trial writes its result and exits 0; its Job is deleted once it has
        self._server.answer(number, prune)

    def cancel(self, number: int, reason: str) -> None:
        trial = self._trials.get(number)
        if trial is None:
            return
        if trial.manifest is not None:  # never created: nothing to delete
            trial.manifest = None
            self._ready.append(
                FinishedEvent(number, self._done(trial, TrialOutcome.failed(
                    TrialFailure.CANCELLED, reason)))
            )  # fmt: skip
            return
        outcome = self._stop(trial, TrialFailure.CANCELLED, reason)
        self._ready.append(FinishedEvent(number, self._done(trial, outcome)))

    def close(self) -> None:
        # After an outage the API cannot take the deletes, and the next run adopts the Jobs.
        for trial in [] if self._api_lost else list(self._trials.values()):
            if trial.manifest is None:
                self._delete(trial.name)
        self._trials.clear()
        for informer in (self._jobs, self._pods):
            if informer is not None:
                informer.stop()
        self._server.close()
        self._api_client.close()
