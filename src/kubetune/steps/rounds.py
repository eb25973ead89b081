"""Steps of the looping pipeline: suggest a round, run one trial of it, record the round.

KFP v2 has no while loop, so the looping pipeline unrolls rounds at compile time; each
round is ``suggest`` -> a ``ParallelFor`` of ``trial`` tasks -> ``record``. State between
rounds lives in the study storage, never in task outputs: the study's trials, plus one
study attribute per pipeline run (which bracket and rung come next, which configs were
promoted, when the run started) and one per round (what was suggested, what was decided).

Promotion in a successive-halving bracket keeps the *same* optuna trial RUNNING from one
rung to the next and reports each rung's curve on it, so a study read with optuna shows
one trial per config, pruned at the rung it stopped at, as the controller form does.

Every step is safe to run twice (KFP retries a task whose pod died): a suggest that ran
before returns the same requests, and a record that ran before returns its stored
decision; a record killed midway decides again from the round's results alone (not from
what it already wrote) and skips trials it already told.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from kubetune.core import optuna_compat as compat
from kubetune.core.attrs import (
    DURATION,
    FAILURE,
    MESSAGE,
    METRICS,
    PARAMS,
    RESUME,
    RETRIED,
    SCHEDULER,
    STRATEGY,
)
from kubetune.core.fingerprint import check_fingerprint, study_fingerprint
from kubetune.core.loop import trial_seed
from kubetune.core.plan import open_study, plan_search, stop_conditions
from kubetune.core.spec import ExperimentSpec
from kubetune.core.stop_reason import StopKind, StopReason
from kubetune.core.strategies import SamplerContext, build_sampler
from kubetune.core.study_state import StudyState, is_done
from kubetune.core.sync_schedule import SyncSchedule, schedule_for
from kubetune.core.termination import first_reason
from kubetune.core.trial import TrialOutcome, TrialRequest, TrialStatus
from kubetune.core.warm_start import warm_start_study
from kubetune.errors import SpecError
from kubetune.steps.pipeline_io import DataRef, run_context, shared_study_check
from kubetune.steps.pipeline_retune import WarmStart
from kubetune.steps.search_result import SearchResult, search_result

__all__ = ["RoundDecision", "record_round", "run_round_trial", "suggest_round"]

_LOOP = "kubetune:loop:{run}"
_ROUND = "kubetune:round:{run}:{index}"


@dataclass
class _LoopState:
    """What the next round of one pipeline run does (a study user attribute)."""

    started_at: float  # wall clock: rounds run in different pods, monotonic clocks differ
    bracket: int = 0
    rung: int = 0
    pending: list[int] = field(default_factory=list)  # promoted to ``rung``

    @classmethod
    def load(cls, study: optuna.Study, run_id: str) -> _LoopState | None:
        raw = study.user_attrs.get(_LOOP.format(run=run_id))
        return cls(**raw) if isinstance(raw, dict) else None

    def save(self, study: optuna.Study, run_id: str) -> None:
        study.set_user_attr(_LOOP.format(run=run_id), asdict(self))


@dataclass(frozen=True)
class RoundDecision:
    go_on: bool
    result: SearchResult

    @property
    def decision(self) -> str:
        return "go" if self.go_on else "stop"


def _open(spec: ExperimentSpec, data: DataRef | None) -> optuna.Study:
    """The run's study: with a ``retune:`` section, the one of its data version."""
    data_fingerprint = data.fingerprint if data is not None else None
    context = run_context(spec, data_fingerprint=data_fingerprint)
    shared_study_check(context)
    plan = plan_search(spec)
    study = open_study(spec, plan, storage=context.study_storage, study_name=context.study_name)
    # Each round opens the study afresh in a new process: seed the sampler by the study's
    # length, or every round would draw the first round's configs again.
    n_trials = len(study.get_trials(deepcopy=False))
    ctx = SamplerContext(
        space=spec.space, seed=trial_seed(spec.seed, n_trials), parallel=spec.limits.parallel
    )
    study.sampler = build_sampler(plan.strategy, spec.strategy.options, ctx)
    if data_fingerprint is not None:
        check_fingerprint(study, study_fingerprint(spec, data_fingerprint))
    return study


def suggest_round(
    spec: ExperimentSpec,
    *,
    run_id: str,
    round_index: int,
    data: DataRef | None = None,
    warm_start: WarmStart | None = None,
) -> list[str]:
    """The trial requests of round ``round_index`` (JSON strings, one per trial task):
    promoted configs at the next rung's budget, else up to ``limits.parallel`` new ones.
    ``warm_start``: on a new study, earlier runs' best configs are queued to run first."""
    study = _open(spec, data)
    key = _ROUND.format(run=run_id, index=round_index)
    stored = study.user_attrs.get(key)
    if isinstance(stored, dict):  # this task ran before and its pod died: same answer
        return list(stored["requests"])
    fresh = not study.get_trials(deepcopy=False)
    if warm_start and warm_start.count > 0 and fresh and plan_search(spec).strategy != "grid":
        # Only on a study without trials, as the controller's search (a grid visits every
        # config anyway): a retried first suggest finds the queued trials, queues none.
        queued = warm_start_study(spec, study, warm_start.count, warm_start.fallback)
        print(f"warm start: {queued} configs of earlier runs run first", flush=True)
    state = _LoopState.load(study, run_id) or _LoopState(started_at=time.time())
    schedule = schedule_for(spec)
    study.set_user_attr(STRATEGY, plan_search(spec).strategy)
    study.set_user_attr(SCHEDULER, f"{schedule.scheduler} (synchronous rounds)")
    budget = schedule.bracket(state.bracket)[state.rung]
    trials = study.get_trials(deepcopy=False)
    chosen: list[tuple[FrozenTrial | optuna.Trial, dict[str, Any]]]
    if state.rung > 0:
        chosen = [(trials[n], _params_of(spec, trials[n])) for n in state.pending]
    else:
        chosen = _ask(spec, study, trials)
    requests = [
        json.dumps(
            {
                "number": trial.number,
                "params": params,
                "budget": budget,
                "seed": trial_seed(spec.seed, trial.number),
                "round": round_index,
                "rung": state.rung,  # > 0: promoted, goes on from its checkpoint
            },
            sort_keys=True,
        )
        for trial, params in chosen
    ]
    state.save(study, run_id)
    study.set_user_attr(key, {"requests": requests, "bracket": state.bracket, "rung": state.rung})
    return requests


def _ask(
    spec: ExperimentSpec, study: optuna.Study, trials: list[FrozenTrial]
) -> list[tuple[FrozenTrial | optuna.Trial, dict[str, Any]]]:
    counted = sum(1 for t in trials if is_done(t) or t.state == TrialState.RUNNING)
    room = spec.limits.parallel
    if spec.limits.max_trials is not None:
        room = min(room, spec.limits.max_trials - counted)
    remaining = getattr(study.sampler, "remaining", None)  # a finite grid
    if remaining is not None:
        room = min(room, int(remaining(study)))
    if room <= 0:
        # An empty round cannot run: KFP fails a Collected over an empty ParallelFor.
        raise SpecError(
            f"limits.max_trials: study '{spec.name}' already holds {counted} trials"
            f" (max_trials {spec.limits.max_trials}) or its space is exhausted; raise"
            " max_trials (the pipeline parameter) to run more"
        )
    chosen: list[tuple[FrozenTrial | optuna.Trial, dict[str, Any]]] = []
    for _ in range(room):
        trial = study.ask()
        params = spec.space.suggest(trial)
        trial.set_user_attr(PARAMS, params)
        chosen.append((trial, params))
    return chosen


def _params_of(spec: ExperimentSpec, trial: FrozenTrial) -> dict[str, Any]:
    params = trial.user_attrs.get(PARAMS)
    return params if isinstance(params, dict) else spec.space.structure(trial.params)


def run_round_trial(spec: ExperimentSpec, request: str, data: DataRef | None = None) -> str:
    """Run one trial of a round here (in its own pod) and return its result as JSON.

    The trial runs to its rung's budget without pruning: in a synchronous schedule the
    round's ``record`` decides who goes on. A failing config is a result, not a failed
    task; only a dead pod fails the task (and KFP retries it).

    With a fidelity, a trainer that can continue a saved model (the torch trainers)
    saves a checkpoint in the run's artifact store at the end of every rung, keyed by the
    optuna trial number, and a promoted config trains on from it for the remaining budget
    only; other trainers train a promoted config again from scratch, and the result says
    why (``start``).
    """
    # Imported here: suggest and record tasks need neither the trainers nor the data stack.
    from kubetune.core.run_trial import run_trial
    from kubetune.steps.starting_point import RESUMED_FROM_STEP
    from kubetune.steps.trial import BuiltinTrial
    from kubetune.trainers import NullReporter

    req = json.loads(request)
    fn = BuiltinTrial.from_spec(spec, continues_rungs=spec.fidelity is not None)
    _, dataset, trainer = fn.load()
    if data is not None and dataset.fingerprint != data.fingerprint:
        from kubetune.errors import DataError

        raise DataError(f"data: {data.source} changed since this pipeline run retrieved it")
    # The study of the data version: checkpoints are keyed by study and trial number.
    context = run_context(spec, data_fingerprint=dataset.fingerprint)
    # KFP may hand numbers back as floats (protobuf Struct): the contract wants ints.
    budget = None if req.get("budget") is None else int(req["budget"])
    trial_request = TrialRequest(
        study=context.study_name,
        number=int(req["number"]),
        params=req["params"],
        seed=int(req["seed"]),
        budget=budget,
        deadline_s=spec.limits.trial_timeout,
        # Every task of the run reaches the same store (s3:// in a cluster: spec artifacts).
        artifacts=context.artifacts,
    )
    outcome = run_trial(fn, trial_request, NullReporter(), spec.objective.metric)
    start: dict[str, Any] | None = None
    if int(req.get("rung") or 0) > 0:  # promoted: did it go on from its checkpoint?
        resumed = (outcome.metrics or {}).get(RESUMED_FROM_STEP)
        if resumed is not None:
            start = {"resumed_from": int(resumed)}
        elif not trainer.can_continue:
            start = {"from_scratch": f"the {trainer.kind} trainer cannot continue a saved model"}
        else:
            start = {"from_scratch": "no usable checkpoint of the lower rung (see the task log)"}
    return json.dumps(
        {
            "number": trial_request.number,
            "round": req.get("round"),
            "result": outcome.to_dict(),
            "start": start,
        },
        sort_keys=True,
    )


def record_round(
    spec: ExperimentSpec,
    *,
    run_id: str,
    round_index: int,
    results: list[str],
    last_round: bool,
    data: DataRef | None = None,
) -> RoundDecision:
    """Tell the study the round's results, promote a rung's best, and decide whether the
    search goes on (the stop conditions of the spec, or the last compiled round)."""
    study = _open(spec, data)
    key = _ROUND.format(run=run_id, index=round_index)
    round_info = study.user_attrs.get(key)
    if not isinstance(round_info, dict):
        raise SpecError(f"round {round_index} of run {run_id} was never suggested")
    if "decision" in round_info:  # recorded before (the task is being retried)
        stored = round_info["decision"]
        return RoundDecision(stored["go_on"], SearchResult(**stored["result"]))
    state = _LoopState.load(study, run_id)
    if state is None:  # written by the round's suggest
        raise ValueError(f"no loop state for run {run_id!r}: suggest did not run")
    schedule = schedule_for(spec)
    budgets = schedule.bracket(int(round_info["bracket"]))
    final_rung = int(round_info["rung"]) == len(budgets) - 1
    items = [json.loads(raw) for raw in results]
    outcomes = {int(item["number"]): TrialOutcome.from_dict(item["result"]) for item in items}
    starts = {int(item["number"]): item["start"] for item in items if item.get("start")}
    keep = _promoted(spec, schedule, outcomes, final_rung)
    trials = study.get_trials(deepcopy=False)
    budget = budgets[int(round_info["rung"])]
    for number, outcome in sorted(outcomes.items()):
        if number in starts and not trials[number].state.is_finished():
            resume = dict(trials[number].user_attrs.get(RESUME) or {})
            resume[str(budget)] = starts[number]
            compat.set_trial_user_attr(study, compat.trial_id(trials[number]), RESUME, resume)
        _tell(study, trials[number], outcome, final_rung=final_rung, promoted=number in keep)

    elapsed = time.time() - state.started_at
    study_state = StudyState(
        study.get_trials(deepcopy=False), spec.direction, started_at=time.monotonic() - elapsed
    )
    reason = first_reason(stop_conditions(spec), study_state)
    if reason is None and last_round:
        reason = StopReason(
            StopKind.MAX_ROUNDS,
            f"the pipeline's last round ({round_index + 1}) ran; compile it with more rounds"
            " (--max-rounds) to run more trials",
        )
    if reason is not None:
        for number in keep:  # promoted, but the search stops before their next rung
            _stop_pending(study, number)
    elif keep:
        state.rung, state.pending = int(round_info["rung"]) + 1, sorted(keep)
    else:
        state.bracket, state.rung, state.pending = int(round_info["bracket"]) + 1, 0, []
    state.save(study, run_id)
    result = search_result(spec, study, reason, elapsed)
    decision = RoundDecision(reason is None, result)
    study.set_user_attr(
        key, {**round_info, "decision": {"go_on": decision.go_on, "result": asdict(result)}}
    )
    return decision


def _promoted(
    spec: ExperimentSpec,
    schedule: SyncSchedule,
    outcomes: dict[int, TrialOutcome],
    final_rung: bool,
) -> set[int]:
    """The configs of a rung that go on: the best ``1/reduction_factor`` of those that
    finished, ranked from the round's results (so a retried record decides the same)."""
    if final_rung:
        return set()
    scored = [
        (outcome.value, number)
        for number, outcome in outcomes.items()
        if outcome.status is TrialStatus.COMPLETED and outcome.value is not None
    ]
    sign = -1.0 if spec.direction == "maximize" else 1.0
    scored.sort(key=lambda item: (sign * item[0], item[1]))
    return {number for _, number in scored[: schedule.survivors(len(scored))]}


def _tell(
    study: optuna.Study,
    frozen: FrozenTrial,
    outcome: TrialOutcome,
    *,
    final_rung: bool,
    promoted: bool,
) -> None:
    if frozen.state.is_finished():
        return  # told by an earlier attempt of this record task
    trial_id = compat.trial_id(frozen)
    live = compat.live_trial(study, trial_id)
    for step, value in outcome.curve:
        if step not in frozen.intermediate_values:  # a promoted trial re-reports lower rungs
            live.report(value, step)
    previous = frozen.user_attrs.get(DURATION, 0.0)
    live.set_user_attr(DURATION, round(float(previous) + outcome.duration_s, 4))
    if outcome.metrics:
        live.set_user_attr(METRICS, outcome.metrics)
    if outcome.status is TrialStatus.FAILED:
        failure = outcome.failure.value if outcome.failure else "error"
        compat.set_trial_user_attr(study, trial_id, FAILURE, failure)
        compat.set_trial_user_attr(study, trial_id, MESSAGE, outcome.message[:2000])
        compat.set_trial_user_attr(study, trial_id, RETRIED, False)
        study.tell(frozen.number, state=TrialState.FAIL)
    elif outcome.status is TrialStatus.PRUNED:
        study.tell(frozen.number, state=TrialState.PRUNED)
    elif final_rung:
        study.tell(frozen.number, outcome.value)
    elif not promoted:
        # Stopped at this rung by successive halving: pruned, as the controller's pruner would.
        study.tell(frozen.number, state=TrialState.PRUNED)


def _stop_pending(study: optuna.Study, number: int) -> None:
    frozen = study.get_trials(deepcopy=False)[number]
    if frozen.state == TrialState.RUNNING:
        compat.set_trial_user_attr(
            study, compat.trial_id(frozen), MESSAGE, "promoted, but the search stopped first"
        )
        study.tell(number, state=TrialState.PRUNED)
