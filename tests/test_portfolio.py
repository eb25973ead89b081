"""``strategy: portfolio``: GP and TPE (or any of gp, tpe, random) take turns by trial number.

What makes it what it is (which member proposes which trial, that each member models every
finished trial, no repeated start-up draws), that it beats random search on fixed seeds on a
problem that suits it, and that it runs through ``kubetune.tune`` with parallel trials, stop
conditions and a resumed study. Its quality against optuna's TPE is a benchmark question
(``benchmarks/strategies.py``, ``benchmarks/run.py``), not a test's.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

import kubetune
from kubetune.core.space import SearchSpace
from kubetune.core.spec import parse_spec
from kubetune.core.strategies import SamplerContext, build_sampler
from kubetune.core.strategies.portfolio import PortfolioSampler
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
        sampler=PortfolioSampler([first, second], n_startup_trials=4, seed=0)
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
    a = PortfolioSampler([Recorder(1), Recorder(2)], n_startup_trials=3, seed=0)
    b = PortfolioSampler([Recorder(1), Recorder(2)], n_startup_trials=3, seed=0)
    picks_a = [a._members.index(a.member_for(n)) for n in range(3, 20)]
    picks_b = [b._members.index(b.member_for(n)) for n in range(3, 20)]
    assert picks_a == picks_b == [i % 2 for i in range(17)]


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
