"""The GP that fits ranks in categorical-only spaces (core/strategies/rank_gp.py)."""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.samplers import GPSampler

from kubetune.core.spec import parse_spec
from kubetune.core.strategies import choose_strategy
from kubetune.core.strategies.factory import SamplerContext, build_sampler
from kubetune.core.strategies.rank_gp import RankGPSampler, normal_scores, only_categorical
from kubetune.errors import SpecError

optuna.logging.set_verbosity(optuna.logging.WARNING)

WIDTHS = [16, 32, 64, 128, 256, 512]
TABLE_SPACE: dict[str, Any] = {
    f"units{i}": {"type": "categorical", "choices": WIDTHS} for i in range(4)
} | {"act": ["relu", "tanh", "gelu"]}
TARGET = {"units0": 128, "units1": 64, "units2": 256, "units3": 32, "act": "tanh"}


def diverging_table(p: dict[str, Any]) -> float:
    """A small loss that falls with every right choice; widths 512 diverge (like a NN table)."""
    if 512 in (p[f"units{i}"] for i in range(4)):
        return 1e4 * (1 + sum(p[f"units{i}"] == 512 for i in range(4)))
    wrong = sum(p[k] != v for k, v in TARGET.items())
    distance = sum(abs(np.log2(p[f"units{i}"] / TARGET[f"units{i}"])) for i in range(4))
    return 1e-3 * (1 + wrong + distance)


def space(raw: dict[str, Any]) -> Any:
    return parse_spec({"name": "t", "objective": {"metric": "loss"}, "search_space": raw}).space


def sampler(
    raw: dict[str, Any], options: dict[str, Any], seed: int = 0
) -> optuna.samplers.BaseSampler:
    return build_sampler("gp", options, SamplerContext(space(raw), seed=seed, parallel=1))


def best_of(strategy: str, options: dict[str, Any], seed: int, trials: int = 30) -> float:
    made = (
        optuna.samplers.RandomSampler(seed=seed)
        if strategy == "random"
        else sampler(TABLE_SPACE, options | {"n_startup_trials": 8}, seed)
    )
    study = optuna.create_study(sampler=made)
    study.optimize(
        lambda t: diverging_table(
            {
                k: t.suggest_categorical(k, v["choices"] if isinstance(v, dict) else v)
                for k, v in TABLE_SPACE.items()
            }
        ),
        n_trials=trials,
    )
    return study.best_value


def test_normal_scores_keep_the_order_and_bound_outliers() -> None:
    values = np.array([3.0, 1e9, 1.0, 2.0, 2.0])
    scores = normal_scores(values)
    assert list(np.argsort(scores, kind="stable")) == [2, 3, 4, 0, 1]
    assert scores[3] == scores[4]  # ties share a score
    assert np.all(np.abs(scores) < 2.0)  # 1e9 is just "the worst of five"
    distinct = normal_scores(np.array([5.0, 1.0, 4.0, 2.0]))
    assert np.allclose(np.sort(distinct), -np.sort(distinct)[::-1])  # symmetric about 0


def test_only_categorical() -> None:
    assert only_categorical(space(TABLE_SPACE))
    assert not only_categorical(
        space(TABLE_SPACE | {"lr": {"type": "float", "low": 0.1, "high": 1}})
    )
    assert not only_categorical(space({"n": {"type": "int", "low": 1, "high": 4}, "c": ["a", "b"]}))
    assert not only_categorical(space({"fixed": "x"}))  # nothing searched


def test_gp_fits_ranks_only_where_every_parameter_is_categorical() -> None:
    assert type(sampler(TABLE_SPACE, {})) is RankGPSampler
    mixed = TABLE_SPACE | {"lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}}
    assert type(sampler(mixed, {})) is GPSampler
    assert type(sampler(TABLE_SPACE, {"model": "values"})) is GPSampler
    assert type(sampler(mixed, {"model": "ranks"})) is RankGPSampler
    with pytest.raises(SpecError, match=r"strategy\.model"):
        sampler(TABLE_SPACE, {"model": "logs"})


def test_auto_says_why_it_fits_ranks() -> None:
    choice = choose_strategy(space(TABLE_SPACE), 100)
    assert choice.name == "gp" and "ranks" in choice.reason
    mixed = TABLE_SPACE | {"lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}}
    assert "ranks" not in choose_strategy(space(mixed), 100).reason


def test_stored_values_stay_real() -> None:
    study = optuna.create_study(sampler=sampler(TABLE_SPACE, {"n_startup_trials": 3}))
    study.optimize(
        lambda t: float(WIDTHS.index(t.suggest_categorical("units0", WIDTHS))) * 10.0, n_trials=6
    )
    assert {t.value for t in study.trials} <= {0.0, 10.0, 20.0, 30.0, 40.0, 50.0}


def test_rank_gp_beats_random_and_the_plain_gp_on_a_diverging_table() -> None:
    seeds = range(3)
    ranks = statistics.median(best_of("gp", {}, s) for s in seeds)
    values = statistics.median(best_of("gp", {"model": "values"}, s) for s in seeds)
    rnd = statistics.median(best_of("random", {}, s) for s in seeds)
    assert ranks < rnd, (ranks, rnd)
    assert ranks < values, (ranks, values)
