"""The tuning loop: asynchronous ask -> run -> tell with up to N trials in flight.

The controller owns every write to the study; trials only talk to their executor. One
controller runs a study at a time (a lease on the study, see :mod:`kubetune.core.lease`).
Re-running the loop on the same study resumes it: trials left RUNNING by a controller that
died are adopted by the executor when they still run (pods, Jobs), or else failed and queued
again (when retries remain); queued retries run first, and completed trials never run again.

What the stop conditions and progress need is kept in a :class:`StudyState`, read from the
study once at start and then updated as trials are told, so the controller's cost per trial
stays flat however long the study grows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from kubetune.core import optuna_compat as compat
from kubetune.core.attrs import (
    ATTEMPT,
    CONTROLLER_DEATHS,
    DURATION,
    FAILURE,
    MESSAGE,
    METRICS,
    PARAMS,
    PARENT,
    RETRIED,
    RETRY_OF,
)
from kubetune.core.events import LoopObserver, LoopProgress
from kubetune.core.executor import Executor, ExecutorEvent, ReportEvent
from kubetune.core.lease import DEFAULT_TTL_S, StudyLease, release_quietly
from kubetune.core.space import SearchSpace
from kubetune.core.stop_reason import INTERRUPTED, StopKind, StopReason
from kubetune.core.study_state import Direction, StudyState
from kubetune.core.termination import StopCondition, first_reason
from kubetune.core.trial import TrialFailure, TrialOutcome, TrialRequest, TrialStatus

__all__ = [
    # attribute keys, re-exported for code written before kubetune.core.attrs
    "ATTEMPT",
    "DURATION",
    "FAILURE",
    "INTERRUPTED",
    "MESSAGE",
    "METRICS",
    "PARAMS",
    "RETRIED",
    "RETRY_OF",
    "LoopResult",
    "TuningLoop",
    "trial_seed",
]

_POLL_S = 0.5
# Controller deaths in a row a config may sit through without spending a retry. A random
# controller death (a node drained, the pod evicted, an operator's restart, a kill in the
# soak) hits a config only when it happens to be in flight, so long runs of deaths on one
# config are rare; a config that takes the controller down with it (the node out of memory)
# is in flight at every death. The 200-kill soak (kills every few seconds, far more often
# than a real cluster restarts a controller) once saw 4 in a row, which the former cap of 3
# charged a retry; 10 leaves a wide margin. Past the cap the count goes on (it is not reset
# by the retry spent), so such a config spends a retry at every further death and ends as a
# final failure after MAX_CONTROLLER_DEATHS + retries + 1 deaths (13 with the default 2).
MAX_CONTROLLER_DEATHS = 10
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoopResult:
    stop_reason: StopReason
    elapsed_s: float
    progress: LoopProgress


def trial_seed(base_seed: int, number: int) -> int:
    """A distinct, reproducible seed per trial number."""
    return (base_seed * 1_000_003 + number * 7_919 + 1) % (2**31 - 1)


class TuningLoop:
    def __init__(
        self,
        study: optuna.Study,
        space: SearchSpace,
        executor: Executor,
        *,
        stop_conditions: Sequence[StopCondition],
        max_trials: int | None,
        seed: int = 0,
        retries: int = 2,
        budget: int | None = None,
        trial_deadline_s: float | None = None,
        observer: LoopObserver | None = None,
        output_dir: str | None = None,
        lease_ttl_s: float | None = DEFAULT_TTL_S,
        artifacts: str | None = None,
    ) -> None:
        """``lease_ttl_s``: how long a controller's lease outlives its last renewal; None
        takes no lease (a study in memory never takes one: no other process can reach it)."""
        self.study = study
        self.space = space
        self.executor = executor
        self.conditions = list(stop_conditions)
        self.max_trials = max_trials
        self.seed = seed
        self.retries = retries
        self.budget = budget
        self.trial_deadline_s = trial_deadline_s
        self.observer = observer
        self.output_dir = output_dir
        self.artifacts = artifacts  # the trial artifact store's URI, passed to every trial
        self.lease_ttl_s = lease_ttl_s
        self.direction: Direction = "maximize" if study.direction.name == "MAXIMIZE" else "minimize"
        self._in_flight: dict[int, optuna.Trial] = {}
        # The trial being started and whether its params are all suggested (see _start_trial).
        self._starting: tuple[optuna.Trial, bool] | None = None
        self._started_at = time.monotonic()
        self._state = StudyState(direction=self.direction, started_at=self._started_at)
        self._lease: StudyLease | None = None

    # --- public --------------------------------------------------------------------------

    def run(self) -> LoopResult:
        self._started_at = time.monotonic()
        # The lease comes first: a second controller must not fail the first one's trials.
        if self.lease_ttl_s is not None and not compat.is_in_memory(self.study):
            self._lease = StudyLease(self.study, ttl_s=self.lease_ttl_s)
            self._lease.acquire()
        try:
            self._reconcile_stale_trials()
            # The one full read of the study; from here on the state follows what is told.
            self._state = StudyState(
                self.study.get_trials(deepcopy=False), self.direction, self._started_at
            )
            if self.observer:
                self.observer.on_start(self._progress())
            reason = self._drive()
            progress = self._progress()
            if self.observer:
                self.observer.on_stop(reason, progress)
        except BaseException:
            if self._lease is not None:
                release_quietly(self._lease)
            raise
        if self._lease is not None:
            self._lease.release()
        return LoopResult(reason, time.monotonic() - self._started_at, progress)

    # --- the loop ------------------------------------------------------------------------

    def _drive(self) -> StopReason:
        try:
            while True:
                reason = first_reason(self.conditions, self._state) or self._lease_lost()
                if reason is not None:
                    if reason.kind is StopKind.LEASE_LOST:
                        self._drop_all(reason)
                    else:
                        self._wind_down(reason)
                    return reason
                self._fill()
                if not self._in_flight:
                    return self._nothing_left_reason()
                self._poll()
        except KeyboardInterrupt:
            self._settle_interrupted_start()
            self._cancel_all(INTERRUPTED)
            return INTERRUPTED

    def _poll(self) -> None:
        for event in self.executor.poll(timeout=_POLL_S):
            self._handle(event)

    def _fill(self) -> None:
        planned = self._state.finished_count + len(self._in_flight)
        while len(self._in_flight) < self.executor.capacity:
            # Queued retries (and enqueued configs): study.ask() takes them first.
            waiting = self._state.waiting > 0
            full = self.max_trials is not None and planned >= self.max_trials
            if full and not waiting:
                return
            if not waiting and not self._sampler_has_more():
                return
            self._start_trial(from_queue=waiting)
            planned += 1

    def _start_trial(self, *, from_queue: bool) -> None:
        trial = self.study.ask()
        # Until the trial is in flight, Ctrl-C must not leave it RUNNING unseen: suggesting
        # writes every param to storage (an fsync each on a journal), a wide window.
        self._starting = (trial, False)
        params = self.space.suggest(trial)
        self._starting = (trial, True)
        attrs = trial.user_attrs
        request = self._request(trial.number, params, attrs)
        self._in_flight[trial.number] = trial
        self._state.started(from_queue=from_queue)
        self.executor.submit(request)
        self._starting = None
        # written once the trial is on its way: a worker waits on no storage round trip it
        # does not need (with a journal file each one is an fsync)
        trial.set_user_attr(PARAMS, params)

    def _settle_interrupted_start(self) -> None:
        """Ctrl-C came while a trial was being started: it costs nothing and runs again."""
        if self._starting is None:
            return
        trial, suggested = self._starting
        self._starting = None
        was_in_flight = self._in_flight.pop(trial.number, None) is not None
        self.executor.cancel(trial.number, str(INTERRUPTED))  # if it got as far as that
        frozen = self.study.get_trials(deepcopy=False)[trial.number]
        if frozen.state != TrialState.RUNNING:
            return
        if not suggested:  # no config to run again: a fresh trial takes its place
            self._abandon(frozen, "interrupted before this trial started")
            return
        outcome = TrialOutcome.failed(TrialFailure.CANCELLED, str(INTERRUPTED))
        told, retried = self._fail(
            compat.trial_id(frozen), frozen.number, frozen.params, frozen.user_attrs, outcome
        )
        if not was_in_flight:
            self._state.started(from_queue=False)  # so that finished() balances
        self._state.finished(told)
        if retried:
            self._state.queued()

    def _request(self, number: int, params: dict[str, Any], attrs: dict[str, Any]) -> TrialRequest:
        origin = int(attrs.get(RETRY_OF, number))
        return TrialRequest(
            study=self.study.study_name,
            number=number,
            params=params,
            seed=trial_seed(self.seed, origin),
            budget=self.budget,
            attempt=int(attrs.get(ATTEMPT, 1)),
            deadline_s=self.trial_deadline_s,
            output_dir=self.output_dir,
            artifacts=self.artifacts,
            retry_of=int(attrs[RETRY_OF]) if RETRY_OF in attrs else None,
            parent=attrs.get(PARENT),
        )

    def _handle(self, event: ExecutorEvent) -> None:
        trial = self._in_flight.get(event.number)
        if trial is None:
            return
        if isinstance(event, ReportEvent):
            trial.report(event.value, event.step)
            # A report at the full budget ends the trial anyway: pruning it there would only
            # throw a finished result away (ASHA has a rung at every step it likes).
            at_full_budget = self.budget is not None and event.step >= self.budget
            self.executor.answer(event.number, not at_full_budget and trial.should_prune())
            return
        del self._in_flight[event.number]
        self._record(trial, event.outcome)

    def _record(self, trial: optuna.Trial, outcome: TrialOutcome) -> None:
        trial.set_user_attr(DURATION, round(outcome.duration_s, 4))
        if outcome.metrics:
            trial.set_user_attr(METRICS, outcome.metrics)
        retried = False
        if outcome.status is TrialStatus.COMPLETED:
            frozen = self.study.tell(trial, outcome.value)
        elif outcome.status is TrialStatus.PRUNED:
            frozen = self.study.tell(trial, state=TrialState.PRUNED)
        else:
            frozen, retried = self._fail(
                compat.trial_id(trial), trial.number, trial.params, trial.user_attrs, outcome
            )
        self._state.finished(frozen)
        if retried:
            self._state.queued()
        if self.observer:
            self.observer.on_trial_finished(frozen, self._progress())

    def _fail(
        self,
        trial_id: int,
        number: int,
        flat_params: dict[str, Any],
        attrs: dict[str, Any],
        outcome: TrialOutcome,
        *,
        controller_died: bool = False,
    ) -> tuple[FrozenTrial, bool]:
        """Record a failed trial, and queue its config again when it is retried."""
        failure = outcome.failure or TrialFailure.ERROR
        attempt = int(attrs.get(ATTEMPT, 1))
        deaths = int(attrs.get(CONTROLLER_DEATHS, 0)) + 1 if controller_died else 0
        if failure is TrialFailure.CANCELLED:
            # the run stopped, the trial did not fail: it costs no retry, it just runs again
            retry, next_attempt = True, attempt
        elif controller_died and deaths <= MAX_CONTROLLER_DEATHS:
            # Not the config's fault either (see MAX_CONTROLLER_DEATHS for the cap).
            retry, next_attempt = True, attempt
        else:
            # a failure of its own ends the row of deaths; a death past the cap continues it
            retry, next_attempt = failure.retryable and attempt <= self.retries, attempt + 1
        compat.set_trial_user_attr(self.study, trial_id, FAILURE, failure.value)
        compat.set_trial_user_attr(self.study, trial_id, MESSAGE, outcome.message[:2000])
        compat.set_trial_user_attr(self.study, trial_id, RETRIED, retry)
        frozen = self.study.tell(number, state=TrialState.FAIL)
        if retry:
            queued = {ATTEMPT: next_attempt, RETRY_OF: int(attrs.get(RETRY_OF, number))}
            if deaths:
                queued[CONTROLLER_DEATHS] = deaths
            self.study.enqueue_trial(flat_params, user_attrs=queued, skip_if_exists=False)
        return frozen, retry

    def _nothing_left_reason(self) -> StopReason:
        size = getattr(self.study.sampler, "size", None)
        if size is not None and getattr(self.study.sampler, "remaining", None) is not None:
            return StopReason(
                StopKind.EXHAUSTED, f"search space exhausted (all {size} grid configs tried)"
            )
        return StopReason(StopKind.NOTHING_LEFT, "no trials left to run")

    def _wind_down(self, reason: StopReason) -> None:
        """Stop asking; let running trials finish, except when time is up."""
        if reason.kind is StopKind.TIMEOUT:
            # Time is up: wait no longer than the executor's cancel grace. A trial that did
            # not confirm its cancel stays RUNNING in storage; a resumed run reconciles it.
            self._cancel_all(f"cancelled: {reason}")
            return
        while self._in_flight:
            self._lease_lost()  # keeps renewing while the last trials finish
            self._poll()

    def _cancel_all(self, reason: str) -> None:
        for number in list(self._in_flight):
            self.executor.cancel(number, reason)
        deadline = time.monotonic() + self.executor.cancel_grace_s
        while self._in_flight and time.monotonic() < deadline:
            for event in self.executor.poll(timeout=_POLL_S):
                if isinstance(event, ReportEvent):
                    self.executor.answer(event.number, True)
                    continue
                trial = self._in_flight.pop(event.number, None)
                if trial is not None:
                    # A cancelled trial (failure CANCELLED) is the run's doing, not the
                    # config's: it is queued again and runs first when the study resumes.
                    self._record(trial, event.outcome)

    def _drop_all(self, reason: StopReason) -> None:
        """Another controller owns the study now (and failed our trials as stale): stop ours
        without writing anything more."""
        for number in list(self._in_flight):
            self.executor.cancel(number, f"cancelled: {reason}")
        deadline = time.monotonic() + self.executor.cancel_grace_s
        while self._in_flight and time.monotonic() < deadline:
            for event in self.executor.poll(timeout=_POLL_S):
                if isinstance(event, ReportEvent):
                    self.executor.answer(event.number, True)
                else:
                    self._in_flight.pop(event.number, None)
        self._in_flight.clear()

    # --- the lease -----------------------------------------------------------------------

    def _lease_lost(self) -> StopReason | None:
        if self._lease is None:
            return None
        successor = self._lease.keep()
        if successor is None:
            return None
        _log.warning("study %s taken over by %s", self.study.study_name, successor.describe())
        return StopReason(
            StopKind.LEASE_LOST,
            f"another controller took the study over ({successor.describe()})",
        )

    # --- resume --------------------------------------------------------------------------

    def _reconcile_stale_trials(self) -> None:
        """Trials RUNNING in storage belong to a controller that died: the executor adopts
        those it still runs; the others are failed and queued again."""
        stale: list[FrozenTrial] = []
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if not trial.params and self.space.searched_names:
                # Killed between ask and suggest: nothing ran and there is no config to
                # retry. It does not count as a finished trial; a fresh one takes its place.
                self._abandon(trial, "the controller stopped before this trial started")
            else:
                stale.append(trial)
        offered = {t.number for t in stale}
        adopted = set(self.executor.recover([self._rebuilt_request(t) for t in stale])) & offered
        for trial in stale:
            if trial.number in adopted:
                self._in_flight[trial.number] = compat.live_trial(
                    self.study, compat.trial_id(trial)
                )
                continue
            outcome = TrialOutcome.failed(
                TrialFailure.INFRASTRUCTURE, "the controller stopped while this trial was running"
            )
            self._fail(
                compat.trial_id(trial),
                trial.number,
                trial.params,
                trial.user_attrs,
                outcome,
                controller_died=True,
            )

    def _rebuilt_request(self, trial: FrozenTrial) -> TrialRequest:
        """The request a trial from storage was (most likely) submitted with."""
        params = trial.user_attrs.get(PARAMS)
        if not isinstance(params, dict):  # died before PARAMS was written
            params = self.space.structure(trial.params)
        return self._request(trial.number, params, trial.user_attrs)

    def _abandon(self, trial: FrozenTrial, message: str) -> None:
        trial_id = compat.trial_id(trial)
        compat.set_trial_user_attr(self.study, trial_id, FAILURE, TrialFailure.INFRASTRUCTURE.value)
        compat.set_trial_user_attr(self.study, trial_id, MESSAGE, message)
        # replaced: not a final failure
        compat.set_trial_user_attr(self.study, trial_id, RETRIED, True)
        self.study.tell(trial.number, state=TrialState.FAIL)

    # --- reads ---------------------------------------------------------------------------

    def _sampler_has_more(self) -> bool:
        remaining = getattr(self.study.sampler, "remaining", None)
        return remaining is None or int(remaining(self.study)) > 0

    def _progress(self) -> LoopProgress:
        state = self._state
        return LoopProgress(
            completed=state.completed,
            pruned=state.pruned,
            failed=state.final_failures,
            requeued=state.failed - state.final_failures,
            running=len(self._in_flight),
            best_value=state.best_value,
            max_trials=self.max_trials,
        )
