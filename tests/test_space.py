"""Search spaces: conditions, per-layer parameters, flat <-> structured params, grids."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from kubetune.core.space import SearchSpace, SpaceError, build_grid, count_configs, iter_configs
from kubetune.core.spec import parse_spec


@pytest.fixture(autouse=True, scope="module")
def _quiet_optuna() -> Any:
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    optuna.logging.set_verbosity(previous)


def make_space(raw: dict[str, Any]) -> SearchSpace:
    """A space as a spec writes it (shorthands included), validated the same way."""
    spec = parse_spec({"name": "t", "objective": {"metric": "loss"}, "search_space": raw})
    return spec.space


def random_trials(space: SearchSpace, n: int, seed: int = 0) -> list[tuple[dict, dict]]:
    """(structured params, optuna's flat params) for ``n`` random trials."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        params = space.suggest(trial)
        out.append((params, dict(trial.params)))
        study.tell(trial, 0.0)
    return out


# Dependents are declared before what they depend on: the space must reorder them.
OPTIMIZERS: dict[str, Any] = {
    "dampening": {"type": "float", "low": 0, "high": 0.5, "when": {"nesterov": False}},
    "nesterov": {"type": "categorical", "choices": [True, False], "when": {"optimizer": "sgd"}},
    "momentum": {"type": "float", "low": 0, "high": 0.99, "when": {"optimizer": "sgd"}},
    "beta1": {
        "type": "float",
        "low": 0.8,
        "high": 0.99,
        "when": {"optimizer": ["adam", "rmsprop"]},
    },
    "optimizer": ["sgd", "adam", "rmsprop"],
    "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
}

LAYERED: dict[str, Any] = {
    "units": {"type": "categorical", "choices": [16, 32, 64], "per_layer": "n_layers"},
    "n_layers": {"type": "int", "low": 1, "high": 4},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5, "per_layer": "n_layers"},
    "act": "relu",
}


# --- conditions ----------------------------------------------------------------------


def test_dependencies_are_sampled_first() -> None:
    names = make_space(OPTIMIZERS).names
    assert set(names) == set(OPTIMIZERS)
    assert names.index("optimizer") < names.index("nesterov") < names.index("dampening")
    assert names.index("optimizer") < names.index("momentum")
    assert names.index("optimizer") < names.index("beta1")
    layered = make_space(LAYERED).names
    assert layered.index("n_layers") < layered.index("units")
    assert layered.index("n_layers") < layered.index("dropout")


def test_conditional_params_appear_only_when_their_condition_holds() -> None:
    space = make_space(OPTIMIZERS)
    branches: Counter[tuple[Any, ...]] = Counter()
    for params, flat in random_trials(space, 300):
        opt = params["optimizer"]
        sgd = opt == "sgd"
        assert ("momentum" in params) == sgd
        assert ("nesterov" in params) == sgd
        # nested: dampening needs nesterov, which itself needs sgd
        assert ("dampening" in params) == (sgd and params["nesterov"] is False)
        assert ("beta1" in params) == (opt in ("adam", "rmsprop"))
        assert "lr" in params
        assert flat == params  # no per-layer or fixed params: flat and structured agree
        assert 1e-4 <= params["lr"] <= 1e-1
        if sgd:
            assert 0 <= params["momentum"] <= 0.99
        if "dampening" in params:
            assert 0 <= params["dampening"] <= 0.5
        if "beta1" in params:
            assert 0.8 <= params["beta1"] <= 0.99
        branches[(opt, params.get("nesterov"))] += 1
    assert set(branches) == {("sgd", True), ("sgd", False), ("adam", None), ("rmsprop", None)}


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_conditions_hold_with_grouped_multivariate_tpe() -> None:
    space = make_space(OPTIMIZERS)
    sampler = optuna.samplers.TPESampler(seed=1, multivariate=True, group=True, n_startup_trials=5)
    study = optuna.create_study(sampler=sampler)
    model_based: set[str] = set()  # optimizers TPE itself chose, after the random start
    for number in range(30):
        trial = study.ask()
        params = space.suggest(trial)
        assert ("momentum" in params) == (params["optimizer"] == "sgd")
        assert ("beta1" in params) == (params["optimizer"] != "sgd")
        if number >= 5:
            model_based.add(params["optimizer"])
        study.tell(trial, params["lr"] + params.get("momentum", 1.0))
    assert len(study.trials) == 30
    # both sides of the condition were sampled by TPE, so both checks above were exercised
    assert "sgd" in model_based and model_based - {"sgd"}


def test_condition_on_an_int_value() -> None:
    space = make_space(
        {
            "depth": {"type": "int", "low": 1, "high": 3},
            "skip": {"type": "categorical", "choices": [True, False], "when": {"depth": [2, 3]}},
        }
    )
    seen = set()
    for params, _ in random_trials(space, 60):
        assert ("skip" in params) == (params["depth"] >= 2)
        seen.add(params["depth"])
    assert seen == {1, 2, 3}


def test_condition_on_a_fixed_value_is_always_true() -> None:
    space = make_space(
        {"act": "leaky", "slope": {"type": "float", "low": 0, "high": 1, "when": {"act": "leaky"}}}
    )
    for params, flat in random_trials(space, 10):
        assert params["act"] == "leaky"
        assert "slope" in params
        assert flat == {"slope": params["slope"]}  # fixed values are not suggested to optuna


# --- per-layer parameters ------------------------------------------------------------


def test_per_layer_params_are_lists_of_length_n_layers() -> None:
    space = make_space(LAYERED)
    counts = Counter()
    for params, flat in random_trials(space, 200):
        n = params["n_layers"]
        counts[n] += 1
        assert 1 <= n <= 4
        assert isinstance(params["units"], list) and len(params["units"]) == n
        assert isinstance(params["dropout"], list) and len(params["dropout"]) == n
        assert all(u in (16, 32, 64) for u in params["units"])
        assert all(0 <= d <= 0.5 for d in params["dropout"])
        assert params["act"] == "relu"
        expected_flat = {"n_layers"} | {f"units_{i}" for i in range(n)}
        expected_flat |= {f"dropout_{i}" for i in range(n)}
        assert set(flat) == expected_flat
        assert [flat[f"units_{i}"] for i in range(n)] == params["units"]
    assert set(counts) == {1, 2, 3, 4}


def test_zero_layers_give_empty_lists() -> None:
    space = make_space(
        {
            "n_layers": {"type": "int", "low": 0, "high": 2},
            "units": {"type": "categorical", "choices": [8, 16], "per_layer": "n_layers"},
        }
    )
    lengths = {len(params["units"]) for params, _ in random_trials(space, 40)}
    assert lengths == {0, 1, 2}


def test_per_layer_param_of_an_inactive_layer_count_is_inactive() -> None:
    # n_layers exists only for the mlp; so do the per-layer units (no KeyError for linear)
    space = make_space(
        {
            "model": ["mlp", "linear"],
            "n_layers": {"type": "int", "low": 1, "high": 3, "when": {"model": "mlp"}},
            "units": {"type": "categorical", "choices": [16, 32], "per_layer": "n_layers"},
        }
    )
    models = set()
    for params, flat in random_trials(space, 60):
        models.add(params["model"])
        if params["model"] == "linear":
            assert params == {"model": "linear"}
            assert flat == {"model": "linear"}
        else:
            assert len(params["units"]) == params["n_layers"]
        assert space.structure(flat) == params
    assert models == {"mlp", "linear"}
    assert space.cardinality() == 1 + (2 + 4 + 8)


def test_distributions_cover_every_flat_name() -> None:
    space = make_space(LAYERED)
    dists = space.distributions()
    assert set(dists) == {"n_layers"} | {f"units_{i}" for i in range(4)} | {
        f"dropout_{i}" for i in range(4)
    }
    assert dists["n_layers"] == IntDistribution(1, 4)
    assert dists["units_3"] == CategoricalDistribution([16, 32, 64])
    assert dists["dropout_0"] == FloatDistribution(0.0, 0.5)


# --- structure() round trip ------------------------------------------------------------


@pytest.mark.parametrize("raw", [OPTIMIZERS, LAYERED], ids=["conditional", "layered"])
def test_structure_round_trips_trial_params(raw: dict[str, Any]) -> None:
    space = make_space(raw)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    suggested = []
    for _ in range(100):
        trial = study.ask()
        params = space.suggest(trial)
        assert space.structure(trial.params) == params
        suggested.append(params)
        study.tell(trial, 1.0)
    # and from the stored (frozen) trials, as the API reads best_params back
    assert [space.structure(t.params) for t in study.trials] == suggested


def test_structure_of_a_mixed_space() -> None:
    space = make_space(
        {
            **LAYERED,
            "optimizer": ["sgd", "adam"],
            "momentum": {"type": "float", "low": 0, "high": 1, "when": {"optimizer": "sgd"}},
        }
    )
    flat = {
        "n_layers": 2,
        "units_0": 16,
        "units_1": 64,
        "dropout_0": 0.1,
        "dropout_1": 0.2,
        "optimizer": "adam",
    }
    assert space.structure(flat) == {
        "n_layers": 2,
        "units": [16, 64],
        "dropout": [0.1, 0.2],
        "act": "relu",
        "optimizer": "adam",
    }


# --- grid enumeration ----------------------------------------------------------------


GRID_CASES: list[tuple[str, dict[str, Any], int]] = [
    ("plain", {"a": [1, 2, 3], "b": ["x", "y"]}, 3 * 2),
    ("fixed-does-not-multiply", {"a": [1, 2, 3], "b": ["x", "y"], "c": 7}, 6),
    (
        # sgd: momentum(2) x nesterov(2); adam: beta(3); rmsprop: nothing more
        "conditional",
        {
            "optimizer": ["sgd", "adam", "rmsprop"],
            "momentum": {
                "type": "categorical",
                "choices": [0.0, 0.9],
                "when": {"optimizer": "sgd"},
            },
            "nesterov": {
                "type": "categorical",
                "choices": [True, False],
                "when": {"optimizer": "sgd"},
            },
            "beta": {
                "type": "categorical",
                "choices": [0.9, 0.99, 0.999],
                "when": {"optimizer": "adam"},
            },
        },
        4 + 3 + 1,
    ),
    (
        # a=p: b=1 -> 1, b=2 -> c(3); a=q -> 1
        "nested-conditions",
        {
            "a": ["p", "q"],
            "b": {"type": "categorical", "choices": [1, 2], "when": {"a": "p"}},
            "c": {"type": "categorical", "choices": ["u", "v", "w"], "when": {"b": 2}},
        },
        1 + 3 + 1,
    ),
    (
        # 1, 2 or 3 layers of 2 choices, times 2 activations
        "per-layer",
        {
            "n_layers": {"type": "int", "low": 1, "high": 3},
            "units": {"type": "categorical", "choices": [16, 32], "per_layer": "n_layers"},
            "act": ["relu", "tanh"],
        },
        (2 + 4 + 8) * 2,
    ),
    (
        # linear: 1; mlp: 1 or 2 layers of 3 choices
        "per-layer-conditional-count",
        {
            "model": ["mlp", "linear"],
            "n_layers": {"type": "int", "low": 1, "high": 2, "when": {"model": "mlp"}},
            "units": {"type": "categorical", "choices": ["s", "m", "l"], "per_layer": "n_layers"},
        },
        1 + 3 + 9,
    ),
    (
        # two per-layer params share the count: (2*2)^n for n in 0..2
        "two-per-layer",
        {
            "n_layers": {"type": "int", "low": 0, "high": 2},
            "units": {"type": "categorical", "choices": [16, 32], "per_layer": "n_layers"},
            "bn": {"type": "categorical", "choices": [True, False], "per_layer": "n_layers"},
        },
        1 + 4 + 16,
    ),
    (
        # float step 0.25 on [0, 1] -> 5 values; int step 5 on [0, 10] -> 3 values
        "steps",
        {
            "x": {"type": "float", "low": 0, "high": 1, "step": 0.25},
            "n": {"type": "int", "low": 0, "high": 10, "step": 5},
        },
        5 * 3,
    ),
    (
        # a condition on an int value: depth 2 or 3 adds skip(2)
        "condition-on-int",
        {
            "depth": {"type": "int", "low": 1, "high": 3},
            "skip": {"type": "categorical", "choices": [True, False], "when": {"depth": [2, 3]}},
        },
        1 + 2 + 2,
    ),
]


@pytest.mark.parametrize(
    ("raw", "expected"), [(r, n) for _, r, n in GRID_CASES], ids=[i for i, _, _ in GRID_CASES]
)
def test_grid_counts(raw: dict[str, Any], expected: int) -> None:
    space = make_space(raw)
    grid = build_grid(space)
    assert len(grid) == expected
    assert count_configs(space) == expected
    assert space.cardinality() == expected
    assert len(list(iter_configs(space, points=None))) == expected
    # every config is distinct and is a valid, complete config of the space
    keys = {tuple(sorted((k, repr(v)) for k, v in config.items())) for config in grid}
    assert len(keys) == expected
    for config in grid:
        structured = space.structure(config)
        for name, value in structured.items():
            if name in raw and space.params[name].when:
                assert space.is_active(name, structured)
            if isinstance(value, list):
                layers = getattr(space.params[name], "per_layer", None)
                assert len(value) == structured[layers]


def test_grid_values_of_steps_are_exact() -> None:
    space = make_space({"x": {"type": "float", "low": 0, "high": 1, "step": 0.1}})
    assert [c["x"] for c in build_grid(space)] == [round(i / 10, 1) for i in range(11)]


def test_grid_samples_continuous_floats_but_counts_them_infinite() -> None:
    space = make_space({"x": {"type": "float", "low": 0, "high": 1}, "c": ["a", "b"]})
    assert space.cardinality() is None
    grid = build_grid(space, points=3)
    assert sorted({c["x"] for c in grid}) == [0.0, 0.5, 1.0]
    assert len(grid) == 6
    log_space = make_space({"lr": {"type": "float", "low": 1e-4, "high": 1, "log": True}})
    assert log_space.cardinality() is None
    assert [c["lr"] for c in build_grid(log_space)] == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1, 1])


def test_cardinality_counts_every_int_not_the_grid_points() -> None:
    wide = make_space({"n": {"type": "int", "low": 1, "high": 100}})
    assert wide.cardinality() == 100  # distinct configs...
    assert [c["n"] for c in build_grid(wide)] == [1, 26, 50, 75, 100]  # ...the grid samples
    short = make_space({"n": {"type": "int", "low": 1, "high": 20}})
    assert short.cardinality() == len(build_grid(short)) == 20  # short ranges: every value
    log = make_space({"n": {"type": "int", "low": 1, "high": 1024, "log": True}})
    assert log.cardinality() == 1024
    assert [c["n"] for c in build_grid(log)] == [1, 6, 32, 181, 1024]


def test_cardinality_of_a_huge_space_is_cheap_and_past_the_cap() -> None:
    space = make_space({f"x{i}": {"type": "int", "low": 0, "high": 1000} for i in range(6)})
    start = time.perf_counter()
    size = space.cardinality(cap=10**9)
    assert size is not None and size > 10**9
    capped = space.cardinality(cap=50)
    assert capped is not None and capped > 50
    assert time.perf_counter() - start < 1.0


def test_cardinality_none_when_any_float_is_continuous() -> None:
    assert make_space({"x": {"type": "float", "low": 0, "high": 1}}).cardinality() is None
    mixed = make_space(
        {
            "c": ["a", "b"],
            "n": {"type": "int", "low": 1, "high": 3},
            "x": {"type": "float", "low": 0, "high": 1, "when": {"c": "a"}},
        }
    )
    assert mixed.cardinality() is None
    stepped = make_space(
        {
            "c": ["a", "b"],
            "x": {"type": "float", "low": 0, "high": 1, "step": 0.5, "when": {"c": "a"}},
        }
    )
    assert stepped.cardinality() == 3 + 1


# --- flags, describe() -----------------------------------------------------------------


def test_flags() -> None:
    plain = make_space(
        {
            "x": {"type": "float", "low": 0, "high": 1},
            "n": {"type": "int", "low": 1, "high": 3},
            "seed": 4,
        }
    )
    assert plain.is_numeric and not plain.is_conditional
    assert plain.searched_names == ["x", "n"]
    assert make_space(OPTIMIZERS).is_conditional
    assert not make_space(OPTIMIZERS).is_numeric
    layered = make_space(LAYERED)
    assert layered.is_conditional  # per-layer counts as an architecture space
    assert not layered.is_numeric


def test_describe() -> None:
    space = make_space(
        {
            "lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
            "optimizer": ["sgd", "adam"],
            "momentum": {"type": "float", "low": 0, "high": 0.99, "when": {"optimizer": "sgd"}},
            "beta": {
                "type": "float",
                "low": 0.8,
                "high": 0.99,
                "when": {"optimizer": ["adam", "sgd"]},
            },
            "n_layers": {"type": "int", "low": 1, "high": 4},
            "units": {"type": "categorical", "choices": [16, 32], "per_layer": "n_layers"},
            "x": {"type": "float", "low": 0, "high": 1, "step": 0.25},
            "k": {"type": "int", "low": 0, "high": 8, "step": 2},
            "act": "relu",
        }
    )
    described = dict(space.describe())
    assert list(described) == space.names
    assert described == {
        "lr": "float in [0.0001, 0.1] (log)",
        "optimizer": "one of ['sgd', 'adam']",
        "momentum": "float in [0.0, 0.99] (linear), only when optimizer = sgd",
        "beta": "float in [0.8, 0.99] (linear), only when optimizer in ['adam', 'sgd']",
        "n_layers": "int in [1, 4] (linear)",
        "units": "one of [16, 32], one per layer of n_layers",
        "x": "float in [0.0, 1.0] (linear, step 0.25)",
        "k": "int in [0, 8] (linear, step 2)",
        "act": "fixed 'relu'",
    }


def test_an_empty_space_is_refused() -> None:
    with pytest.raises(SpaceError, match="search_space: must define at least one parameter"):
        SearchSpace({})
