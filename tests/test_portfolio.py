"""``strategy: portfolio``: GP and TPE (or any of gp, tpe, random) share the trials, by credit
(the member whose trials improve the best value proposes) or in turn by trial number.

What makes it what it is (which member proposes which trial, that the pick survives a
restart, that each member models every finished trial, no repeated start-up draws), that it
beats random search on fixed seeds on a problem that suits it, and that it runs through
``kubetune.tune`` with parallel trials, stop conditions and a resumed study. Its quality
against optuna's TPE is a benchmark question (``benchmarks/run.py``), not a test's.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, Literal

import optuna
import pytest
from optuna.trial import TrialState

import kubetune
from kubetune.core.space import SearchSpace
from kubetune.core.spec import parse_spec
from kubetune.core.strategies import SamplerContext, build_sampler
from kubetune.core.strategies.portfolio import (
    MEMBER_ATTR,
    REPLACED_ATTR,
    STARTUP,
    PortfolioSampler,
    _credited_choice,
)
from kubetune.errors import SpecError

SPHERE: dict[str, Any] = {f"x{i}": {"type": "float", "low": -5, "high": 5} for i in range(3)}


def sphere(p: dict[str, Any], ctx: Any = None) -> float:
    return sum((p[f"x{i}"] - 1.0) ** 2 for i in range(3))


def make_space(raw: dict[str, Any]) -> SearchSpace:
    return parse_spec({"name": "t", "objective": {"metric": "loss"}, "search_space": raw}).space


class Recorder(optuna.samplers.RandomSampler):
    """A member that records the trials it proposed and how many finished trials it saw."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed=seed)
        self.proposed: list[int] = []
        self.seen: list[int] = []

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.proposed.append(trial.number)
        self.seen.append(len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))))


def test_members_take_turns_after_the_random_start_up() -> None:
    first, second = Recorder(1), Recorder(2)
    study = optuna.create_study(
        sampler=PortfolioSampler([first, second], n_startup_trials=4, allocation="turns", seed=0)
    )
    study.optimize(
        lambda t: sphere({f"x{i}": t.suggest_float(f"x{i}", -5, 5) for i in range(3)}), n_trials=12
    )
    assert first.proposed == [4, 6, 8, 10]
    assert second.proposed == [5, 7, 9, 11]
    # each member is handed the whole study: it models the other's trials too
    assert first.seen == [4, 6, 8, 10] and second.seen == [5, 7, 9, 11]


def test_the_member_depends_on_the_trial_number_only() -> None:
    """What makes a restarted controller hand each trial to the same member."""
    a = PortfolioSampler([Recorder(1), Recorder(2)], n_startup_trials=3, allocation="turns")
    b = PortfolioSampler([Recorder(1), Recorder(2)], n_startup_trials=3, allocation="turns")
    picks_a = [a._members.index(a.member_for(n)) for n in range(3, 20)]
    picks_b = [b._members.index(b.member_for(n)) for n in range(3, 20)]
    assert picks_a == picks_b == [i % 2 for i in range(17)]


def _member_scored(
    sampler: PortfolioSampler,
    score: Any,
    n_trials: int,
    direction: Literal["minimize", "maximize"] = "minimize",
) -> optuna.Study:
    """A study whose objective's value depends on which member proposed the trial."""
    study = optuna.create_study(sampler=sampler, direction=direction)

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_float("x", 0, 1)
        member = study._storage.get_trial(trial._trial_id).system_attrs[MEMBER_ATTR]
        return float(score(member, trial.number))

    study.optimize(objective, n_trials=n_trials)
    return study


def _picks(study: optuna.Study) -> list[int]:
    return [t.system_attrs[MEMBER_ATTR] for t in study.trials]


def test_credit_hands_the_trials_to_the_member_that_improves() -> None:
    """Member 0's trials always beat the best so far, member 1's never: member 1 proposes
    only when it has been idle for ``explore_every`` trials."""
    sampler = PortfolioSampler([Recorder(1), Recorder(2)], n_startup_trials=3, explore_every=4)
    study = _member_scored(sampler, lambda m, n: -n if m == 0 else 100.0, n_trials=33)
    picks = _picks(study)
    assert picks[:3] == [STARTUP] * 3
    # each member proposes once, then member 0 wins; member 1 gets every fifth trial back
    assert picks[3:5] == [0, 1]
    assert picks[5:] == ([0, 0, 0, 0, 1] * 6)[:28]


def test_credit_follows_the_study_direction() -> None:
    """Maximizing, the member whose values grow earns the trials."""
    sampler = PortfolioSampler([Recorder(1), Recorder(2)], n_startup_trials=2, explore_every=3)
    study = _member_scored(
        sampler, lambda m, n: n if m == 1 else -100.0, n_trials=22, direction="maximize"
    )
    picks = _picks(study)[4:]
    assert picks == [1, 1] + [0, 1, 1, 1] * 4, picks  # member 0 idle for 3: its turn


def test_a_member_that_wins_again_gets_its_turns_back() -> None:
    """Member 1 improves nothing until trial 20, then everything: it takes over."""
    sampler = PortfolioSampler([Recorder(1), Recorder(2)], n_startup_trials=2, explore_every=4)
    study = _member_scored(
        sampler,
        lambda m, n: (-n if n < 20 else 0.0) if m == 0 else (0.0 if n < 20 else -n),
        n_trials=60,
    )
    late = _picks(study)[40:]
    assert late.count(1) >= 15, late


def test_a_restarted_controller_hands_a_started_trial_to_the_member_chosen_for_it() -> None:
    """The pick lives in the trial's system attributes, not in the sampler object."""
    storage = optuna.storages.InMemoryStorage()
    first = PortfolioSampler([Recorder(1), Recorder(2)], n_startup_trials=0, seed=0)
    study = optuna.create_study(storage=storage, sampler=first, study_name="s")
    trial = study.ask()
    picked = storage.get_trial(trial._trial_id).system_attrs[MEMBER_ATTR]
    other = 1 - picked
    # as if a different pick had been made: a new sampler must read it, not choose again
    storage.set_trial_system_attr(trial._trial_id, MEMBER_ATTR, other)
    again = PortfolioSampler([Recorder(1), Recorder(2)], n_startup_trials=0, seed=0)
    resumed = optuna.load_study(study_name="s", storage=storage, sampler=again)
    assert again.member_index(resumed, storage.get_trial(trial._trial_id)) == other


class Stubborn(optuna.samplers.RandomSampler):
    """A member that always proposes the same config once it has a search space."""

    def infer_relative_search_space(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial
    ) -> dict[str, Any]:
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return optuna.search_space.intersection_search_space(done) if done else {}

    def sample_relative(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial, search_space: dict[str, Any]
    ) -> dict[str, Any]:
        return {"a": "x", "b": 1} if search_space else {}


def _small_finite_study(deduplicate: bool, n_trials: int) -> optuna.Study:
    sampler = PortfolioSampler(
        [Stubborn(1), Stubborn(2)], n_startup_trials=2, deduplicate=deduplicate, seed=0
    )
    study = optuna.create_study(sampler=sampler)
    study.optimize(
        lambda t: (
            {"x": 0.0, "y": 1.0, "z": 2.0}[t.suggest_categorical("a", ["x", "y", "z"])]
            + t.suggest_int("b", 1, 3)
        ),
        n_trials=n_trials,
    )
    return study


def test_a_config_already_tried_is_replaced_by_an_unseen_one() -> None:
    """Both members repeat one config: the portfolio tries the other 8 of the 9 instead
    (another member's proposal first, then random draws), and marks the stand-ins."""
    study = _small_finite_study(deduplicate=True, n_trials=9)
    configs = [(t.params["a"], t.params["b"]) for t in study.trials]
    assert len(set(configs)) == 9
    replaced = [t.number for t in study.trials if t.system_attrs.get(REPLACED_ATTR)]
    proposed = [t.number for t in study.trials if (t.params["a"], t.params["b"]) == ("x", 1)]
    assert len(proposed) == 1 and set(replaced) == set(range(2, 9)) - set(proposed)
    assert study.best_value == 1.0  # ("x", 1): found however it was drawn


def test_repeats_are_kept_with_deduplicate_off_and_once_every_config_is_tried() -> None:
    kept = _small_finite_study(deduplicate=False, n_trials=8)
    assert [(t.params["a"], t.params["b"]) for t in kept.trials][2:] == [("x", 1)] * 6
    full = _small_finite_study(deduplicate=True, n_trials=12)  # 9 configs: 3 must repeat
    assert len({(t.params["a"], t.params["b"]) for t in full.trials}) == 9


def test_a_replaced_trial_earns_its_member_no_credit() -> None:
    """Member 0's repeats are replaced by draws that improve: the credit stays at zero, so
    member 1, whose own trials improve, gets the trials."""
    trials = []
    for number, (member, replaced, value) in enumerate(
        [(STARTUP, False, 10.0), (0, True, 5.0), (1, False, 4.0), (0, True, 3.0), (1, False, 2.0)]
    ):
        attrs = {MEMBER_ATTR: member, REPLACED_ATTR: replaced}
        trials.append(optuna.trial.create_trial(value=value, system_attrs=attrs))
        trials[-1].number = number
    assert _credited_choice(trials, 2, optuna.study.StudyDirection.MINIMIZE, 4) == 1


def test_default_members_are_gp_and_tpe_with_their_own_seeds() -> None:
    ctx = SamplerContext(make_space(SPHERE), seed=7, parallel=1)
    sampler = build_sampler("portfolio", {}, ctx)
    assert isinstance(sampler, PortfolioSampler)
    assert [type(m).__name__ for m in sampler._members] == ["GPSampler", "TPESampler"]


def test_no_config_is_drawn_twice_while_the_models_wait_for_results() -> None:
    """With parallel trials a member can start before 10 trials finished and then draws at
    random itself: seeded like the portfolio's start-up, it would repeat trial 0, 1, ..."""
    result = kubetune.tune(sphere, SPHERE, strategy="portfolio", max_trials=24, parallel=2, seed=0)
    configs = [tuple(sorted(t.params.items())) for t in result.study.trials]
    assert len(set(configs)) == len(configs) == 24


def _best(strategy: str, seed: int) -> float:
    space = make_space(SPHERE)
    ctx = SamplerContext(space, seed=seed, parallel=1)
    study = optuna.create_study(sampler=build_sampler(strategy, {}, ctx))
    for _ in range(24):
        trial = study.ask()
        study.tell(trial, sphere(space.suggest(trial)))
    return study.best_value


def test_portfolio_beats_random_search_on_a_smooth_function() -> None:
    portfolio = statistics.mean(_best("portfolio", s) for s in range(3))
    rnd = statistics.mean(_best("random", s) for s in range(3))
    assert portfolio < 0.25 * rnd, (portfolio, rnd)


def test_resumes_with_parallel_trials_and_stops_at_the_target(tmp_path: Path) -> None:
    storage = str(tmp_path / "study.journal")
    kwargs: dict[str, Any] = {"strategy": "portfolio", "parallel": 2, "seed": 0}
    first = kubetune.tune(sphere, SPHERE, max_trials=12, storage=storage, **kwargs)
    assert len(first.study.get_trials(states=(TrialState.COMPLETE,))) == 12
    second = kubetune.tune(sphere, SPHERE, max_trials=20, storage=storage, **kwargs)
    trials = second.study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 20 and second.stop_reason.kind.value == "max_trials"
    assert second.best_value == min(t.value for t in trials)  # type: ignore[type-var]
    target = kubetune.tune(sphere, SPHERE, target=0.5, max_trials=200, **kwargs)
    assert target.stop_reason.kind.value == "target"
    assert target.best_value is not None and target.best_value <= 0.5


@pytest.mark.parametrize(
    "members", [["gp", "smac"], [], "gp", ["portfolio"]], ids=["smac", "empty", "str", "nested"]
)
def test_bad_members_name_the_field(members: Any) -> None:
    with pytest.raises(SpecError, match=r"strategy\.members: a list of gp, tpe, random"):
        kubetune.tune(
            sphere,
            SPHERE,
            strategy="portfolio",
            strategy_options={"members": members},
            max_trials=2,
        )


@pytest.mark.parametrize("bad", ["bandit", 3, None], ids=["name", "int", "none"])
def test_bad_allocation_names_the_field(bad: Any) -> None:
    with pytest.raises(SpecError, match=r"strategy\.allocation: one of credit, turns"):
        kubetune.tune(
            sphere, SPHERE, strategy="portfolio", strategy_options={"allocation": bad}, max_trials=2
        )
