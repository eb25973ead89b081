"""Every strategy runs through ``kubetune.tune``; the model-based ones beat random search.

Trials run in worker processes (a short start-up per ``tune`` call), so objectives are
cheap module-level functions and budgets are small. Every run uses ``parallel=1`` and a
fixed seed, so each comparison below is deterministic.
"""

from __future__ import annotations

import functools
import statistics
import sys
from collections.abc import Iterator
from typing import Any

import cloudpickle
import optuna
import pytest
from optuna.trial import TrialState

import kubetune
from kubetune.core.attrs import PARAMS, SCHEDULER, STRATEGY
from kubetune.core.search import TuneResult
from kubetune.core.space import SearchSpace, build_grid
from kubetune.core.spec import parse_spec
from kubetune.core.strategies import (
    STRATEGY_NAMES,
    RegularizedEvolutionSampler,
    choose_scheduler,
    choose_strategy,
)

# Ship this module's objectives to the workers by value: otherwise every worker imports this
# test module (and pytest with it), about 0.3 s more per ``tune`` call.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(autouse=True, scope="module")
def _quiet_optuna() -> Iterator[None]:
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    optuna.logging.set_verbosity(previous)


def make_space(raw: dict[str, Any]) -> SearchSpace:
    return parse_spec({"name": "t", "objective": {"metric": "loss"}, "search_space": raw}).space


def completed(result: TuneResult) -> list[optuna.trial.FrozenTrial]:
    trials = result.study.get_trials(states=(TrialState.COMPLETE,))
    return sorted(trials, key=lambda t: t.number)


# --- objectives (module level: they are shipped to worker processes) --------------------

SHIFT = (1.5, -2.0, 0.5, 3.0)
SPHERE_SPACE = {f"x{i}": {"type": "float", "low": -5, "high": 5} for i in range(4)}


def shifted_sphere(p: dict[str, Any]) -> float:
    """Smooth 4-D bowl, minimum 0 at SHIFT."""
    return sum((p[f"x{i}"] - s) ** 2 for i, s in enumerate(SHIFT))


MIXED_SPACE: dict[str, Any] = {
    "x": {"type": "float", "low": -5, "high": 5},
    "n": {"type": "int", "low": 1, "high": 4},
    "c": ["a", "b", "c"],
}


ARCH_SPACE: dict[str, Any] = {
    "n_layers": {"type": "int", "low": 1, "high": 3},
    "units": {"type": "categorical", "choices": [8, 16, 32], "per_layer": "n_layers"},
    "optimizer": ["sgd", "adam"],
    "momentum": {"type": "float", "low": 0.0, "high": 0.99, "when": {"optimizer": "sgd"}},
    "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "act": "relu",
}


def arch(p: dict[str, Any]) -> float:
    assert p["act"] == "relu" and len(p["units"]) == p["n_layers"]  # the trial sees its config
    return sum(p["units"]) / 100 + abs(p["lr"] - 0.01) + p.get("momentum", 0.5)


# Discrete architecture search: the objective rewards 3 layers of [64, 128, 64] and relu.
NAS_SPACE: dict[str, Any] = {
    "n_layers": {"type": "int", "low": 1, "high": 5},
    "units": {"type": "categorical", "choices": [16, 32, 64, 128, 256], "per_layer": "n_layers"},
    "activation": ["relu", "tanh", "gelu"],
}
NAS_TARGET = (64, 128, 64)


def nas_loss(p: dict[str, Any]) -> float:
    wrong_units = sum(
        0 if i < len(NAS_TARGET) and u == NAS_TARGET[i] else 1 for i, u in enumerate(p["units"])
    )
    return 2 * abs(p["n_layers"] - 3) + wrong_units + (p["activation"] != "relu")


def reports_progress(p: dict[str, Any], ctx: Any) -> float:
    value = (p["x"] - 0.3) ** 2
    for step in range(1, (ctx.budget or 1) + 1):
        ctx.report(step, value + 1.0 / step)
    return value


# --- every strategy completes and respects the space ---------------------------------------

ALL = (
    "grid",
    "random",
    "tpe",
    "gp",
    "cmaes",
    "qmc",
    "evolution",
    "pbt",
    "bohb",
    "rl",
    "smac",
    "darts",
    "portfolio",
    "auto",
)


def test_every_strategy_is_covered() -> None:
    assert set(ALL) == set(STRATEGY_NAMES)


# Options that let each strategy's own (model-based) phase start within 12 trials.
OPTIONS: dict[str, dict[str, Any]] = {
    "tpe": {"n_startup_trials": 5},
    "gp": {"n_startup_trials": 10},  # GP on categorical/per-layer params is slow: 2 suggestions
    "evolution": {"population_size": 5, "sample_size": 2},
}


def tune_arch(strategy: str, seed: int) -> TuneResult:
    return kubetune.tune(
        arch,
        ARCH_SPACE,
        strategy=strategy,
        strategy_options=OPTIONS.get(strategy),
        max_trials=12,
        seed=seed,
    )


run_arch = functools.cache(tune_arch)  # the reproducibility tests run it once more


@pytest.mark.parametrize(
    "strategy",
    # SMAC: ~8 s; darts trains a supernet of a torch trainer, not an objective (test_darts.py)
    [pytest.param(s, marks=pytest.mark.slow) if s == "smac" else s for s in ALL if s != "darts"],
)
def test_strategy_completes_and_respects_the_space(strategy: str) -> None:
    space = make_space(ARCH_SPACE)
    result = run_arch(strategy, 3)
    # 7 searched dimensions with numbers, 12 trials: auto picks the GP/TPE portfolio
    assert result.strategy == ("portfolio" if strategy == "auto" else strategy)
    assert result.stop_reason == "max_trials reached (12 trials finished)"
    trials = completed(result)
    assert len(trials) == len(result.study.trials) == 12  # no config handed out was invalid
    for t in trials:
        p = t.user_attrs[PARAMS]
        assert space.structure(t.params) == p
        assert 1 <= p["n_layers"] <= 3
        assert len(p["units"]) == p["n_layers"]
        assert set(p["units"]) <= {8, 16, 32}
        assert p["optimizer"] in ("sgd", "adam")
        assert ("momentum" in p) == (p["optimizer"] == "sgd")
        if "momentum" in p:
            assert 0.0 <= p["momentum"] <= 0.99
        assert 1e-4 <= p["lr"] <= 1e-1
        assert p["act"] == "relu"
        assert "act" not in t.params  # fixed values are not sampled
        assert t.value == pytest.approx(arch(p))
    best = min(trials, key=lambda t: t.value or 0.0)
    assert result.best_value == best.value
    assert result.best_trial_number == best.number
    assert result.best_trial is not None and result.best_trial.number == best.number
    assert result.best_params == best.user_attrs[PARAMS]


# --- quality: model-based strategies beat random search ----------------------------------

SEEDS = range(5)


@functools.cache
def sphere_values(strategy: str, trials: int, seed: int, options: tuple = ()) -> list[float]:
    """The objective values of a run on the shifted sphere, in trial order."""
    result = kubetune.tune(
        shifted_sphere,
        SPHERE_SPACE,
        strategy=strategy,
        strategy_options=dict(options),
        max_trials=trials,
        seed=seed,
    )
    values = [t.value for t in completed(result)]
    assert len(values) == trials and result.best_value == min(values)
    return values  # type: ignore[return-value]


def mean_best(strategy: str, trials: int, seeds: range, options: tuple = ()) -> float:
    if strategy == "random":  # a seeded random run is a prefix of a longer one
        return statistics.mean(min(sphere_values("random", 40, s)[:trials]) for s in seeds)
    return statistics.mean(min(sphere_values(strategy, trials, s, options)) for s in seeds)


def test_random_prefix_shortcut_holds() -> None:
    short = kubetune.tune(shifted_sphere, SPHERE_SPACE, strategy="random", max_trials=6, seed=1)
    assert [t.value for t in completed(short)] == sphere_values("random", 40, 1)[:6]


def test_tpe_beats_random_on_a_smooth_function() -> None:
    tpe, rnd = mean_best("tpe", 40, SEEDS), mean_best("random", 40, SEEDS)
    assert tpe < 0.5 * rnd, (tpe, rnd)


def test_gp_beats_random_on_a_smooth_function() -> None:
    # GP suggestions cost ~0.3 s each: a small budget, a short random start
    seeds, opts = range(3), (("n_startup_trials", 6),)
    gp, rnd = mean_best("gp", 16, seeds, opts), mean_best("random", 16, seeds)
    assert gp < 0.25 * rnd, (gp, rnd)
    assert gp < 2.0  # close to the optimum (0) after 16 trials


def test_cmaes_beats_random_on_a_smooth_function() -> None:
    cma, rnd = mean_best("cmaes", 40, SEEDS), mean_best("random", 40, SEEDS)
    assert cma < 0.5 * rnd, (cma, rnd)


def test_evolution_beats_random_on_an_architecture_space() -> None:
    def best_nas(strategy: str, options: dict[str, Any], seed: int) -> float:
        best = kubetune.tune(
            nas_loss,
            NAS_SPACE,
            strategy=strategy,
            strategy_options=options,
            max_trials=60,
            seed=seed,
        ).best_value
        # a run without a completed trial has no best: it must not count as a perfect 0
        assert best is not None, (strategy, seed)
        return best

    def mean_nas(strategy: str, options: dict[str, Any]) -> float:
        return statistics.mean(best_nas(strategy, options, s) for s in range(4))

    evo = mean_nas("evolution", {"population_size": 10, "sample_size": 3})
    rnd = mean_nas("random", {})
    assert evo < rnd - 0.5, (evo, rnd)


def _run_in_process(
    sampler: optuna.samplers.BaseSampler, space: SearchSpace, n: int, direction: str, score: Any
) -> optuna.Study:
    study = optuna.create_study(sampler=sampler, direction=direction)
    for _ in range(n):
        trial = study.ask()
        study.tell(trial, score(space.suggest(trial)))
    return study


def test_evolution_maximizes_too() -> None:
    """Parent selection must follow the direction: maximising -loss beats random as well."""
    space = make_space(NAS_SPACE)

    def score(p: dict[str, Any]) -> float:
        return -nas_loss(p)

    def mean_best(make: Any) -> float:
        return statistics.mean(
            _run_in_process(make(s), space, 60, "maximize", score).best_value for s in range(8)
        )

    evo = mean_best(
        lambda s: RegularizedEvolutionSampler(population_size=10, sample_size=3, seed=s)
    )
    rnd = mean_best(lambda s: optuna.samplers.RandomSampler(seed=s))
    assert evo > rnd + 0.5, (evo, rnd)


def test_evolution_children_are_one_mutation_from_a_recent_parent() -> None:
    space = make_space({f"p{i}": ["a", "b", "c", "d"] for i in range(5)})
    population = 8
    sampler = RegularizedEvolutionSampler(population_size=population, sample_size=3, seed=0)
    study = _run_in_process(
        sampler, space, 40, "minimize", lambda p: sum(v != "a" for v in p.values())
    )
    trials = study.trials
    for t in trials[population:]:
        recent = trials[t.number - population : t.number]
        distances = [sum(t.params[k] != r.params[k] for k in t.params) for r in recent]
        assert 1 in distances, (t.number, distances)
    assert study.best_value < 2  # the all-"a" config is 5 mutations from a random start


# --- grid -----------------------------------------------------------------------------

OPTIMIZER_GRID: dict[str, Any] = {  # 4 (sgd) + 3 (adam) + 1 (rmsprop) = 8 configs
    "optimizer": ["sgd", "adam", "rmsprop"],
    "momentum": {"type": "categorical", "choices": [0.0, 0.9], "when": {"optimizer": "sgd"}},
    "nesterov": {"type": "categorical", "choices": [True, False], "when": {"optimizer": "sgd"}},
    "beta": {"type": "categorical", "choices": [0.9, 0.99, 0.999], "when": {"optimizer": "adam"}},
}


def cheap_objective(p: dict[str, Any]) -> float:
    return len(repr(sorted(p.items())))


def _visited(result: TuneResult) -> list[tuple[tuple[str, str], ...]]:
    return [tuple(sorted((k, repr(v)) for k, v in t.params.items())) for t in completed(result)]


def _all_configs(raw: dict[str, Any], **kw: Any) -> set[tuple[tuple[str, str], ...]]:
    grid = build_grid(make_space(raw), **kw)
    return {tuple(sorted((k, repr(v)) for k, v in c.items())) for c in grid}


@pytest.mark.parametrize("parallel", [1, 2])
def test_grid_visits_every_config_once_then_stops(parallel: int) -> None:
    result = kubetune.tune(
        cheap_objective, OPTIMIZER_GRID, strategy="grid", max_trials=50, parallel=parallel
    )
    visited = _visited(result)
    assert len(visited) == 8 == len(set(visited))
    assert set(visited) == _all_configs(OPTIMIZER_GRID)
    assert "exhausted" in result.stop_reason
    assert len(result.study.trials) == 8  # nothing asked past the end of the grid


def test_grid_smaller_budget_stops_at_max_trials() -> None:
    result = kubetune.tune(cheap_objective, OPTIMIZER_GRID, strategy="grid", max_trials=5)
    visited = _visited(result)
    assert len(visited) == 5 == len(set(visited))
    assert set(visited) <= _all_configs(OPTIMIZER_GRID)
    assert result.stop_reason.startswith("max_trials reached")


def test_grid_on_float_steps_and_layers() -> None:
    raw = {
        "x": {"type": "float", "low": 0, "high": 1, "step": 0.25},
        "n_layers": {"type": "int", "low": 1, "high": 2},
        "units": {"type": "categorical", "choices": [16, 32], "per_layer": "n_layers"},
    }
    result = kubetune.tune(cheap_objective, raw, strategy="grid", max_trials=100)
    visited = _visited(result)
    assert len(visited) == 5 * (2 + 4) == len(set(visited))
    assert set(visited) == _all_configs(raw)
    assert "exhausted" in result.stop_reason
    xs = {t.user_attrs[PARAMS]["x"] for t in completed(result)}
    assert xs == {0.0, 0.25, 0.5, 0.75, 1.0}
    units = {tuple(t.user_attrs[PARAMS]["units"]) for t in completed(result)}
    assert units == {(16,), (32,), (16, 16), (16, 32), (32, 16), (32, 32)}


def test_grid_samples_continuous_floats_with_grid_points() -> None:
    raw = {"x": {"type": "float", "low": 0, "high": 1}}
    result = kubetune.tune(
        cheap_objective, raw, strategy="grid", strategy_options={"grid_points": 3}, max_trials=20
    )
    assert sorted(t.params["x"] for t in completed(result)) == [0.0, 0.5, 1.0]
    assert len(result.study.trials) == 3  # the grid ran out before max_trials


# --- auto -------------------------------------------------------------------------------


AUTO_CASES: list[tuple[str, dict[str, Any], int | None, str]] = [
    ("finite-fits", {"a": [1, 2, 3], "b": ["x", "y"]}, 10, "grid"),
    ("finite-conditional-fits", OPTIMIZER_GRID, 8, "grid"),
    ("finite-too-big-conditional", OPTIMIZER_GRID, 7, "gp"),
    ("finite-too-big-plain", {"a": [1, 2, 3], "b": ["x", "y"]}, 5, "gp"),
    ("finite-no-trial-limit", {"a": [1, 2, 3]}, None, "tpe"),
    ("conditional-small", ARCH_SPACE, 50, "portfolio"),  # 7 flat dims: n_layers, 3 units, 3 more
    (
        "conditional-large",
        {
            **ARCH_SPACE,
            "units": {**ARCH_SPACE["units"], "choices": [8, 16]},
            "n_layers": {"type": "int", "low": 1, "high": 5},
        },
        50,
        "tpe",
    ),
    ("conditional-many-trials", ARCH_SPACE, 201, "tpe"),
    ("numeric-small", SPHERE_SPACE, 100, "portfolio"),
    ("numeric-int", {"n": {"type": "int", "low": 1, "high": 100}}, 30, "portfolio"),
    ("numeric-with-fixed", {**SPHERE_SPACE, "seed": 3}, 200, "portfolio"),
    ("numeric-too-many-trials", SPHERE_SPACE, 201, "tpe"),
    ("numeric-no-trial-limit", SPHERE_SPACE, None, "tpe"),
    (
        "numeric-12-params",  # flat spaces: GP up to 12 dimensions
        {f"x{i}": {"type": "float", "low": 0, "high": 1} for i in range(12)},
        50,
        "portfolio",
    ),
    (
        "numeric-too-many-params",
        {f"x{i}": {"type": "float", "low": 0, "high": 1} for i in range(13)},
        50,
        "tpe",
    ),
    (
        "conditional-9-dims",  # conditional spaces: GP up to 8 dimensions only
        {
            "model": ["a", "b"],
            **{
                f"a{i}": {"type": "float", "low": 0, "high": 1, "when": {"model": "a"}}
                for i in range(4)
            },
            **{
                f"b{i}": {"type": "float", "low": 0, "high": 1, "when": {"model": "b"}}
                for i in range(4)
            },
        },
        50,
        "tpe",
    ),
    ("mixed", MIXED_SPACE, 50, "portfolio"),
    ("per-layer-counts-every-layer", NAS_SPACE, 60, "portfolio"),  # 1 + 5 + 1 = 7 dims
    ("categorical-only", {f"c{i}": ["a", "b", "c"] for i in range(6)}, 50, "gp"),  # ranks
]


@pytest.mark.parametrize(
    ("raw", "max_trials", "expected"),
    [(r, m, e) for _, r, m, e in AUTO_CASES],
    ids=[i for i, *_ in AUTO_CASES],
)
def test_auto_rule(raw: dict[str, Any], max_trials: int | None, expected: str) -> None:
    choice = choose_strategy(make_space(raw), max_trials)
    assert choice.name == expected, choice.reason
    assert choice.reason


def test_auto_reasons_name_the_limits_and_the_evidence() -> None:
    gp = choose_strategy(make_space(NAS_SPACE), 60)
    assert gp.name == "portfolio" and "GP and TPE share the trials" in gp.reason
    assert gp.reason.startswith(
        "7 searched dimensions (<= 8 in a conditional/per-layer space) and max_trials=60 (<= 200)"
    )
    assert "benchmarks/strategies.py" in gp.reason
    big = choose_strategy(make_space(NAS_SPACE), 500)
    assert big.name == "tpe" and "max_trials=500 (> 200" in big.reason
    assert "grouped per branch" in big.reason  # per-layer parameters make it conditional


def test_auto_grid_reason_names_the_count() -> None:
    choice = choose_strategy(make_space(OPTIMIZER_GRID), 10)
    assert choice.reason == "all 8 configs fit in max_trials=10"


@pytest.mark.parametrize(
    ("raw", "max_trials", "expected"),
    [
        ({"a": [1, 2, 3], "b": ["x", "y"]}, 10, "grid"),
        ({"x0": SPHERE_SPACE["x0"], "x1": SPHERE_SPACE["x1"]}, 11, "portfolio"),
        ({f"x{i}": SPHERE_SPACE["x0"] for i in range(13)}, 6, "tpe"),
    ],
    ids=["grid", "portfolio", "tpe"],
)
def test_auto_strategy_reported_by_tune(
    raw: dict[str, Any], max_trials: int, expected: str
) -> None:
    result = kubetune.tune(cheap_objective, raw, max_trials=max_trials)
    assert result.strategy == expected
    assert result.study.user_attrs[STRATEGY] == expected
    assert result.scheduler == "none"
    if expected == "grid":
        assert "exhausted" in result.stop_reason
        assert len(result.study.trials) == 6


def test_auto_scheduler_with_a_fidelity_is_asha_where_the_guard_watches() -> None:
    assert choose_scheduler("auto", has_fidelity=True) == "asha"
    assert choose_scheduler("auto", has_fidelity=True, guarded=False) == "hyperband"
    assert choose_scheduler("auto", has_fidelity=True, strategy="bohb") == "hyperband"
    assert choose_scheduler("auto", has_fidelity=False) == "none"
    assert choose_scheduler("asha", has_fidelity=True) == "asha"
    assert choose_scheduler("hyperband", has_fidelity=True) == "hyperband"
    result = kubetune.tune(
        reports_progress,
        {"x": {"type": "float", "low": 0, "high": 1}},
        strategy="tpe",
        fidelity={"param": "epochs", "min": 1, "max": 9},
        max_trials=8,
    )
    assert result.scheduler == "asha"
    assert result.study.user_attrs[SCHEDULER] == "asha"
    assert isinstance(result.study.pruner.inner, optuna.pruners.SuccessiveHalvingPruner)
    finished = result.study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(finished) == 8
    assert any(t.intermediate_values for t in finished)  # the reports reached the study


# --- reproducibility ---------------------------------------------------------------------


def _params(result: TuneResult) -> list[dict[str, Any]]:
    return [t.params for t in completed(result)]


@pytest.mark.parametrize("strategy", ["tpe", "random", "evolution", "grid"])
def test_same_seed_same_trials_other_seed_other_trials(strategy: str) -> None:
    first = _params(run_arch(strategy, 3))
    assert len(first) == 12
    assert _params(tune_arch(strategy, 3)) == first  # a fresh run, same seed
    assert _params(tune_arch(strategy, 4)) != first


@pytest.mark.parametrize(
    ("raw", "max_trials", "fidelity", "says"),
    [
        (SPHERE_SPACE, 100, False, "strategy: portfolio (4 searched dimensions (<= 12 in a"),
        (
            {f"c{i}": ["a", "b", "c"] for i in range(6)},
            100,
            False,
            "strategy: gp (6 searched dimensions (<= 12 in a space",
        ),
        (
            {f"x{i}": {"type": "float", "low": 0, "high": 1} for i in range(13)},
            100,
            False,
            "strategy: tpe (13 searched dimensions (> 12 in a space without conditional"
            " parameters): multivariate TPE)",
        ),
        (SPHERE_SPACE, 300, False, "strategy: tpe (max_trials=300 (> 200"),
        (
            NAS_SPACE,
            500,
            False,
            "max_trials=500 (> 200, or none: GP would be too slow):"
            " multivariate TPE, grouped per branch",
        ),
        (SPHERE_SPACE, 100, True, "the scheduler prunes (auto: ASHA with the fidelity guard)"),
        ({"a": [1, 2], "b": ["x", "y"]}, 10, False, "strategy: grid (all 4 configs fit"),
    ],
    ids=["portfolio", "gp", "tpe-dims", "tpe-trials", "tpe-conditional", "fidelity", "grid"],
)
def test_validate_prints_why_auto_chose_its_strategy(
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
    raw: dict[str, Any],
    max_trials: int,
    fidelity: bool,
    says: str,
) -> None:
    """``kubetune validate`` on a spec with ``strategy: auto``: the pick and its reason."""
    import yaml

    from kubetune.cli.main import main

    spec: dict[str, Any] = {
        "name": "why",
        "objective": {"metric": "loss", "direction": "minimize"},
        "search_space": raw,
        "limits": {"max_trials": max_trials},
    }
    if fidelity:
        spec["fidelity"] = {"param": "epochs", "min": 1, "max": 27, "reduction_factor": 3}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert says in out, out
    if fidelity:
        assert "BOHB was significantly worse" in out and "scheduler asha" in out
