"""``kubetune.tune``: the result names the best trial as optuna does, and optuna sampler and
pruner instances can stand in for strategy and scheduler names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

import kubetune
from conftest import restore_default_sigint
from kubetune.core.storage import open_storage
from kubetune.errors import AllTrialsFailedError, SpecError

SPACE = {"x": {"type": "float", "low": 0.0, "high": 5.0}}


def _quadratic(params: dict[str, Any]) -> float:
    return (params["x"] - 2.0) ** 2


def _reports_five_steps(params: dict[str, Any], ctx: kubetune.TrialContext) -> float:
    for step in range(1, 6):
        ctx.report(step, params["x"] + step)
    return params["x"]


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return True


def test_best_trial_is_the_frozen_trial_and_its_number_is_separate() -> None:
    result = kubetune.tune(_quadratic, SPACE, strategy="random", max_trials=6)
    assert isinstance(result.best_trial, FrozenTrial)
    assert result.best_trial.number == result.best_trial_number
    assert result.best_trial_number == result.study.best_trial.number
    assert result.best_trial.value == result.best_value
    assert result.best_params == {"x": result.best_trial.params["x"]}


def test_no_completed_trial_means_no_best_trial() -> None:
    def reports(params: dict[str, Any], ctx: Any) -> float:
        ctx.report(1, params["x"])
        return params["x"]

    result = kubetune.tune(reports, SPACE, strategy="random", max_trials=2, pruner=AlwaysPrune())
    assert result.best_trial is None and result.best_trial_number is None


def test_every_trial_failing_raises_with_the_first_reason() -> None:
    # Issue 7.17: an empty best_params with "max_trials reached" hid that nothing worked.
    def fails(params: dict[str, Any]) -> float:
        raise ValueError("always broken")

    with pytest.raises(AllTrialsFailedError, match=r"all 2 trials failed; the first \(trial 0\)"):
        kubetune.tune(fails, SPACE, strategy="random", max_trials=2, retries=0)
    with pytest.raises(AllTrialsFailedError, match="ValueError: always broken"):
        kubetune.tune(fails, SPACE, strategy="random", max_trials=1, retries=0)


class RecordingSampler(optuna.samplers.RandomSampler):
    """A random sampler that remembers what it drew."""

    def __init__(self) -> None:
        super().__init__(seed=7)
        self.drawn: list[float] = []

    def sample_independent(self, study: Any, trial: Any, name: str, dist: Any) -> Any:
        value = super().sample_independent(study, trial, name, dist)
        self.drawn.append(value)
        return value


def test_a_sampler_instance_replaces_the_strategy() -> None:
    sampler = RecordingSampler()
    result = kubetune.tune(_quadratic, SPACE, strategy=sampler, max_trials=4)
    assert result.study.sampler is sampler
    assert result.strategy == "RecordingSampler"
    assert len(sampler.drawn) == 4
    assert sorted(t.params["x"] for t in result.study.trials) == sorted(sampler.drawn)


def test_sampler_instance_takes_no_strategy_options() -> None:
    with pytest.raises(SpecError, match=r"strategy\.n_startup_trials: options apply to a strategy"):
        kubetune.tune(
            _quadratic,
            SPACE,
            strategy=optuna.samplers.RandomSampler(),
            strategy_options={"n_startup_trials": 3},
            max_trials=1,
        )


@pytest.mark.parametrize("fidelity", [None, {"param": "epochs", "max": 5, "scheduler": "none"}])
@pytest.mark.parametrize("keyword", ["scheduler", "pruner"])
def test_a_pruner_instance_replaces_the_scheduler(
    keyword: str, fidelity: dict[str, Any] | None
) -> None:
    pruner = AlwaysPrune()
    result = kubetune.tune(
        _reports_five_steps,
        SPACE,
        strategy="random",
        max_trials=3,
        fidelity=fidelity,
        **{keyword: pruner},
    )
    assert result.study.pruner is pruner
    assert result.scheduler == "AlwaysPrune"
    states = [t.state for t in result.study.trials]
    assert states == [TrialState.PRUNED] * 3
    assert all(len(t.intermediate_values) == 1 for t in result.study.trials)


def test_a_scheduler_name_is_the_fidelity_scheduler() -> None:
    result = kubetune.tune(
        _reports_five_steps,
        SPACE,
        strategy="random",
        max_trials=2,
        scheduler="asha",
        fidelity={"param": "epochs", "max": 5},
    )
    assert result.scheduler == "asha"
    assert isinstance(result.study.pruner.inner, optuna.pruners.SuccessiveHalvingPruner)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scheduler": "asha"}, r"scheduler= by name needs fidelity="),
        ({"scheduler": "asha", "pruner": AlwaysPrune()}, r"scheduler= or pruner=, not both"),
        ({"pruner": "asha"}, r"pruner= must be an optuna pruner \(got str\)"),
        ({"scheduler": 3}, r"scheduler= must be a scheduler name or an optuna pruner \(got int\)"),
        ({"strategy": "bayes"}, r"strategy\.name: unknown strategy 'bayes'"),
    ],
)
def test_bad_strategy_or_scheduler_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        kubetune.tune(_quadratic, SPACE, max_trials=1, **kwargs)


SCRIPT = """\
import sys, time
import kubetune

def slow(params):
    time.sleep(0.5)
    return params["x"]

try:
    kubetune.tune(slow, {"x": {"type": "float", "low": 0, "high": 1}}, strategy="random",
                  max_trials=50, storage=sys.argv[1])
except KeyboardInterrupt:
    print("interrupted, study saved", flush=True)
    sys.exit(130)
print("carried on", flush=True)
"""


def _completed(journal: Path) -> int:
    if not journal.exists():
        return 0
    study = optuna.load_study(study_name="kubetune", storage=open_storage(str(journal)))
    return sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


@pytest.mark.slow
def test_ctrl_c_inside_tune_reaches_the_caller_after_the_study_is_saved(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "tune_script.py"
    script.write_text(SCRIPT)
    journal = tmp_path / "study.journal"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(journal)],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=restore_default_sigint,
    )
    deadline = time.monotonic() + 180  # generous: CI machines can be slow to start
    while time.monotonic() < deadline and not _completed(journal):
        time.sleep(0.2)  # until at least one trial finished
    assert _completed(journal) >= 1, "no trial finished: the interrupt would test nothing"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted, study saved" in out
    assert "carried on" not in out
    assert _completed(journal) >= 1
