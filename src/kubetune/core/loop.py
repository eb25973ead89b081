"""The tuning loop: asynchronous ask -> run -> tell with up to N trials in flight.

The controller owns every write to the study; trials only talk to their executor.
Re-running the loop on the same study resumes it: trials left RUNNING by a controller
that died are failed and queued again (when retries remain), queued retries run first,
and completed trials are never run again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from kubetune.core.events import LoopObserver, LoopProgress
from kubetune.core.executor import Executor, FinishedEvent, ReportEvent
from kubetune.core.space import SearchSpace
from kubetune.core.termination import RETRIED, StopCondition, StudySnapshot, first_reason
from kubetune.core.trial import TrialFailure, TrialOutcome, TrialRequest, TrialStatus

# user_attrs kubetune keeps on trials (and RETRIED, from termination)
ATTEMPT = "kubetune:attempt"
RETRY_OF = "kubetune:retry_of"
FAILURE = "failure"
MESSAGE = "message"
METRICS = "metrics"
DURATION = "duration_s"
PARAMS = "kubetune:params"

_POLL_S = 0.5
INTERRUPTED = "interrupted by the user"


@dataclass(frozen=True)
class LoopResult:
    stop_reason: str
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
    ) -> None:
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
        self.direction: Any = "maximize" if study.direction.name == "MAXIMIZE" else "minimize"
        self._in_flight: dict[int, optuna.Trial] = {}
        self._started_at = time.monotonic()

    # --- public --------------------------------------------------------------------------

    def run(self) -> LoopResult:
        self._started_at = time.monotonic()
        self._reconcile_stale_trials()
        if self.observer:
            self.observer.on_start(self._progress(self._snapshot()))
        reason = self._drive()
        progress = self._progress(self._snapshot())
        if self.observer:
            self.observer.on_stop(reason, progress)
        return LoopResult(reason, time.monotonic() - self._started_at, progress)

    # --- the loop ------------------------------------------------------------------------

    def _drive(self) -> str:
        try:
            while True:
                snap = self._snapshot()
                reason = first_reason(self.conditions, snap)
                if reason is not None:
                    self._wind_down(reason)
                    return reason
                self._fill(snap)
                if not self._in_flight:
                    return self._nothing_left_reason()
                for event in self.executor.poll(timeout=_POLL_S):
                    self._handle(event)
        except KeyboardInterrupt:
            self._cancel_all(INTERRUPTED)
            return INTERRUPTED

    def _fill(self, snap: StudySnapshot) -> None:
        planned = snap.finished_count + len(self._in_flight)
        # Queued retries, counted from the snapshot: study.ask() takes them first.
        waiting = sum(1 for t in snap.trials if t.state == TrialState.WAITING)
        while len(self._in_flight) < self.executor.capacity:
            full = self.max_trials is not None and planned >= self.max_trials
            if full and not waiting:
                return
            if not waiting and not self._sampler_has_more():
                return
            self._start_trial()
            planned += 1
            waiting = max(0, waiting - 1)

    def _start_trial(self) -> None:
        trial = self.study.ask()
        params = self.space.suggest(trial)
        attempt = int(trial.user_attrs.get(ATTEMPT, 1))
        origin = int(trial.user_attrs.get(RETRY_OF, trial.number))
        request = TrialRequest(
            study=self.study.study_name,
            number=trial.number,
            params=params,
            seed=trial_seed(self.seed, origin),
            budget=self.budget,
            attempt=attempt,
            deadline_s=self.trial_deadline_s,
            output_dir=self.output_dir,
        )
        self._in_flight[trial.number] = trial
        self.executor.submit(request)
        # written once the trial is on its way: a worker waits on no storage round trip it
        # does not need (with a journal file each one is an fsync)
        trial.set_user_attr(PARAMS, params)

    def _handle(self, event: ReportEvent | FinishedEvent) -> None:
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
        if outcome.status is TrialStatus.COMPLETED:
            frozen = self.study.tell(trial, outcome.value)
        elif outcome.status is TrialStatus.PRUNED:
            frozen = self.study.tell(trial, state=TrialState.PRUNED)
        else:
            frozen = self._fail(trial.number, trial.params, trial.user_attrs, outcome)
        if self.observer:
            self.observer.on_trial_finished(frozen, self._progress(self._snapshot()))

    def _fail(
        self, number: int, flat_params: dict[str, Any], attrs: dict[str, Any], outcome: TrialOutcome
    ) -> FrozenTrial:
        failure = outcome.failure or TrialFailure.ERROR
        attempt = int(attrs.get(ATTEMPT, 1))
        if failure is TrialFailure.CANCELLED:
            # the run stopped, the trial did not fail: it costs no retry, it just runs again
            retry, next_attempt = True, attempt
        else:
            retry, next_attempt = failure.retryable and attempt <= self.retries, attempt + 1
        trial_id = self.study._storage.get_trial_id_from_study_id_trial_number(
            self.study._study_id, number
        )
        storage = self.study._storage
        storage.set_trial_user_attr(trial_id, FAILURE, failure.value)
        storage.set_trial_user_attr(trial_id, MESSAGE, outcome.message[:2000])
        storage.set_trial_user_attr(trial_id, RETRIED, retry)
        frozen = self.study.tell(number, state=TrialState.FAIL)
        if retry:
            self.study.enqueue_trial(
                flat_params,
                user_attrs={ATTEMPT: next_attempt, RETRY_OF: int(attrs.get(RETRY_OF, number))},
                skip_if_exists=False,
            )
        return frozen

    def _nothing_left_reason(self) -> str:
        size = getattr(self.study.sampler, "size", None)
        if size is not None and getattr(self.study.sampler, "remaining", None) is not None:
            return f"search space exhausted (all {size} grid configs tried)"
        return "no trials left to run"

    def _wind_down(self, reason: str) -> None:
        """Stop asking; let running trials finish, except when time is up."""
        if reason.startswith("timeout"):
            self._cancel_all(f"cancelled: {reason}")
        while self._in_flight:
            for event in self.executor.poll(timeout=_POLL_S):
                self._handle(event)

    def _cancel_all(self, reason: str) -> None:
        for number in list(self._in_flight):
            self.executor.cancel(number, reason)
        deadline = time.monotonic() + 10
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

    # --- resume --------------------------------------------------------------------------

    def _reconcile_stale_trials(self) -> None:
        """Trials RUNNING in storage belong to a controller that died: fail and re-queue them."""
        for stale in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if not stale.params and self.space.searched_names:
                # Killed between ask and suggest: nothing ran and there is no config to
                # retry. It does not count as a finished trial; a fresh one takes its place.
                self._abandon(stale.number, "the controller stopped before this trial started")
                continue
            outcome = TrialOutcome.failed(
                TrialFailure.INFRASTRUCTURE, "the controller stopped while this trial was running"
            )
            self._fail(stale.number, stale.params, stale.user_attrs, outcome)

    def _abandon(self, number: int, message: str) -> None:
        trial_id = self.study._storage.get_trial_id_from_study_id_trial_number(
            self.study._study_id, number
        )
        storage = self.study._storage
        storage.set_trial_user_attr(trial_id, FAILURE, TrialFailure.INFRASTRUCTURE.value)
        storage.set_trial_user_attr(trial_id, MESSAGE, message)
        storage.set_trial_user_attr(trial_id, RETRIED, True)  # replaced: not a final failure
        self.study.tell(number, state=TrialState.FAIL)

    # --- snapshots -----------------------------------------------------------------------

    def _sampler_has_more(self) -> bool:
        remaining = getattr(self.study.sampler, "remaining", None)
        return remaining is None or int(remaining(self.study)) > 0

    def _snapshot(self) -> StudySnapshot:
        trials = self.study.get_trials(deepcopy=False)
        final_failures = sum(
            1 for t in trials if t.state == TrialState.FAIL and not t.user_attrs.get(RETRIED)
        )
        return StudySnapshot(trials, self.direction, self._started_at, final_failures)

    def _progress(self, snap: StudySnapshot) -> LoopProgress:
        counts = {state: 0 for state in TrialState}
        for t in snap.trials:
            counts[t.state] += 1
        return LoopProgress(
            completed=counts[TrialState.COMPLETE],
            pruned=counts[TrialState.PRUNED],
            failed=counts[TrialState.FAIL],
            running=len(self._in_flight),
            best_value=snap.best_value(),
            max_trials=self.max_trials,
        )
