"""Reliability: the controller SIGKILLed many times in a row, then resumed (issue 14.1).

A bounded number of kills per executor runs here; ``benchmarks/kill_soak.py`` runs 200.
The ``kubernetes`` cases run on a SIMULATED cluster (API server emulator and kubelet in this
process, each pod a local process) that outlives every killed controller: in Job-per-trial
mode each trial's pod is a ``kubetune trial`` process; in worker-pool mode two warm
``kubetune worker`` pods serve every controller of the round.
The checker itself is tested on studies damaged on purpose, so a clean soak means something.
"""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path
from types import ModuleType

import optuna
import pytest
from optuna.trial import TrialState

from kubetune.core.attrs import ATTEMPT, RETRIED, RETRY_OF
from kubetune.core.storage import journal_storage

pytestmark = pytest.mark.reliability

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "kill_soak.py"


@pytest.fixture(scope="module")
def soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kubetune_kill_soak", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# Every phase at least once, the search phase (trials running, ends waiting for their tell)
# most often, the push last (it waits for the search to end). Fixed, so CI covers each phase.
PHASES = ["search", "startup", "search", "search", "search", "push"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("executor", "trials"),
    # each Job pod: a new process; the worker pods outlive the controllers
    [("local", 20), ("subprocess", 20), ("kubernetes", 12), ("worker-pool", 20)],
    ids=[
        "local",
        "subprocess",
        "kubernetes-simulated-cluster",
        "kubernetes-worker-pool-simulated-cluster",
    ],
)
def test_controller_killed_many_times_loses_nothing(
    soak: ModuleType, executor: str, trials: int, tmp_path: Path
) -> None:
    result = soak.run_round(
        tmp_path / executor,
        executor,
        kills=len(PHASES),
        rng=random.Random(7),
        max_trials=trials,
        phases=PHASES,
    )
    assert result.problems == []
    assert result.final_returncode == 0
    # the kills really landed where they were aimed: not a vacuous pass
    assert result.kills >= len(PHASES) - 1, result.phases
    assert result.phases["search"] >= 3, result.phases
    assert result.running_at_kill >= 1
    assert result.completed == trials
    if executor in ("kubernetes", "worker-pool"):
        # trials running at a kill ran on (as Jobs, or in the worker pods) and were adopted
        # or read from their results, not rerun; only a trial killed before it reached the
        # cluster (its Job created, or handed to a worker) is failed and rerun (no retry spent)
        assert result.trials - trials < result.running_at_kill, result
    else:  # trials running at a kill were failed and their configs rerun
        assert result.trials > trials
    assert (result.lost, result.duplicated, result.stuck, result.retries_lost) == (0, 0, 0, 0)
    assert (result.wrong_best, result.bad_models) == (0, 0)


# --- the checker finds each kind of damage -------------------------------------------------------


def _damaged_experiment(soak: ModuleType, root: Path) -> ModuleType:
    """A finished round whose study is then damaged in every way the checker counts."""
    exp = soak.Experiment(root, "local", max_trials=4, parallel=1)
    storage = journal_storage(exp.journal)
    study = optuna.create_study(study_name=soak.NAME, storage=storage, direction="maximize")
    dist = {
        "x": optuna.distributions.FloatDistribution(0.0, 1.0),
        "y": optuna.distributions.FloatDistribution(0.0, 1.0),
    }

    def add(x: float, state: TrialState, value: float | None = None, **attrs: object) -> None:
        params = {"x": x, "y": 0.6}
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=dist,
                state=state,
                value=soak.expected_value(params)
                if state == TrialState.COMPLETE and value is None
                else value,
                user_attrs=attrs,
            )
        )

    add(0.3, TrialState.COMPLETE)  # 0: fine
    add(0.5, TrialState.COMPLETE)  # 1: completed ...
    add(0.5, TrialState.COMPLETE, **{RETRY_OF: 1})  # 2: ... and again: duplicated
    add(0.9, TrialState.FAIL, **{RETRIED: False})  # 3: lost
    add(0.1, TrialState.COMPLETE, **{ATTEMPT: 2})  # 4: a retry spent
    add(0.2, TrialState.RUNNING)  # 5: stuck
    add(0.7, TrialState.COMPLETE, value=1.5)  # 6: a value the params cannot give, and best
    return exp


def test_the_checker_counts_every_kind_of_damage(soak: ModuleType, tmp_path: Path) -> None:
    exp = _damaged_experiment(soak, tmp_path / "damaged")
    result = soak.RoundResult(executor="local")
    soak.check_round(exp, result)
    assert result.duplicated == 1
    assert result.lost == 1
    assert result.stuck == 1
    assert result.retries_lost == 1
    assert result.wrong_best == 2  # the study's best (1.5) and the missing summary
    assert result.bad_models == 1  # nothing was pushed
    assert any("trial 6 has value 1.5" in p for p in result.problems)
    assert any("completed 5 trials" in p or "5 trials completed" in p for p in result.problems)
