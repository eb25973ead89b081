"""The experiment spec: every user mistake becomes one ``field.path: problem`` line."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from optuna.pruners import HyperbandPruner, NopPruner, SuccessiveHalvingPruner

from kubetune.core.fidelity_guard import FidelityGuard
from kubetune.core.plan import plan_search
from kubetune.core.space import CategoricalParam, FixedParam, FloatParam, IntParam
from kubetune.core.spec import ExperimentSpec, infer_direction, load_spec, parse_spec
from kubetune.core.termination import MaxTrials, Patience, SpaceExhausted, WallTime
from kubetune.errors import SpecError

BASE: dict[str, Any] = {
    "name": "exp",
    "objective": {"metric": "val_loss"},
    "search_space": {"lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}},
}


def spec_with(**fields: Any) -> dict[str, Any]:
    """The base spec with some top-level fields replaced (``None``... kept as given)."""
    data = copy.deepcopy(BASE)
    data.update(copy.deepcopy(fields))
    return data


def spec_without(field: str) -> dict[str, Any]:
    return {k: v for k, v in copy.deepcopy(BASE).items() if k != field}


def space(**params: Any) -> dict[str, Any]:
    return spec_with(search_space=params)


FLOAT01 = {"type": "float", "low": 0, "high": 1}
LAYERS = {"type": "int", "low": 1, "high": 3}

# (id, spec, the line the error message must contain)
BAD_SPECS: list[tuple[str, dict[str, Any], str]] = [
    # --- unknown fields, types --------------------------------------------------------
    ("unknown-top-field", spec_with(colour="red"), "colour: unknown field"),
    (
        "unknown-nested-field",
        spec_with(objective={"metric": "loss", "bogus": 1}),
        "objective.bogus: unknown field",
    ),
    (
        "unknown-param-field",
        space(lr={**FLOAT01, "scale": "log"}),
        "search_space.lr.scale: unknown field",
    ),
    ("unknown-budget-field", spec_with(budget={"trials": 5}), "limits.trials: unknown field"),
    (
        "unknown-param-type",
        space(lr={"type": "double", "low": 0, "high": 1}),
        "search_space.lr: type must be one of float, int, categorical, fixed",
    ),
    (
        "missing-param-type",
        space(lr={"low": 0, "high": 1}),
        "search_space.lr: type is required (one of float, int, categorical, fixed)",
    ),
    (
        "low-not-a-number",
        space(lr={"type": "float", "low": "tiny", "high": 1}),
        "search_space.lr.low: Input should be a valid number",
    ),
    ("name-not-a-string", spec_with(name=5), "name: Input should be a valid string"),
    ("search-space-list", spec_with(search_space=[1, 2]), "search_space: Input should be a valid"),
    ("missing-name", spec_without("name"), "name: Field required"),
    ("missing-objective", spec_without("objective"), "objective: Field required"),
    ("trainer-without-kind", spec_with(trainer={"epochs": 3}), "trainer.kind: Field required"),
    ("negative-seed", spec_with(seed=-1), "seed: Input should be greater than or equal to 0"),
    # --- parameter ranges -------------------------------------------------------------
    (
        "log-scale-from-zero",
        space(lr={"type": "float", "low": 0, "high": 0.1, "log": True}),
        "search_space.lr.low: must be > 0 for a log scale",
    ),
    (
        "float-low-above-high",
        space(lr={"type": "float", "low": 2, "high": 1}),
        "search_space.lr.low: must be <= high (2.0 > 1.0)",
    ),
    (
        "int-low-above-high",
        space(n={"type": "int", "low": 5, "high": 1}),
        "search_space.n.low: must be <= high (5 > 1)",
    ),
    (
        "int-log-from-zero",
        space(n={"type": "int", "low": 0, "high": 8, "log": True}),
        "search_space.n.low: must be >= 1 for a log scale",
    ),
    (
        "float-not-finite",
        space(x={"type": "float", "low": float("-inf"), "high": 1}),
        "search_space.x.low: low and high must be finite numbers",
    ),
    (
        "float-step-zero",
        space(x={**FLOAT01, "step": 0}),
        "search_space.x.step: must be > 0",
    ),
    (
        "step-with-log",
        space(x={"type": "float", "low": 0.1, "high": 1, "step": 0.1, "log": True}),
        "search_space.x.step: cannot be combined with log: true",
    ),
    (
        "int-step-zero",
        space(n={"type": "int", "low": 0, "high": 8, "step": 0}),
        "search_space.n.step: must be >= 1",
    ),
    (
        "empty-choices",
        space(act={"type": "categorical", "choices": []}),
        "search_space.act.choices: must hold at least one value",
    ),
    (
        "repeated-choices",
        space(act=["relu", "relu"]),
        "search_space.act.choices: must not repeat a value",
    ),
    (
        "choices-equal-to-the-search",
        space(k=[1, True, 1.0]),
        "search_space.k.choices: 1 and True are the same value to the search; keep one",
    ),
    (
        "choices-int-and-float",
        space(k=[0, 2, 2.0]),
        "search_space.k.choices: 2 and 2.0 are the same value to the search",
    ),
    ("empty-search-space", spec_with(search_space={}), "search_space: must define at least one"),
    # --- conditions and per-layer parameters ----------------------------------------
    (
        "when-unknown-param",
        space(optimizer=["sgd", "adam"], momentum={**FLOAT01, "when": {"optim": "sgd"}}),
        "search_space.momentum.when: refers to unknown parameter 'optim'",
    ),
    (
        "when-impossible-choice",
        space(optimizer=["sgd", "adam"], momentum={**FLOAT01, "when": {"optimizer": "rmsprop"}}),
        "search_space.momentum.when: optimizer can never be 'rmsprop' (choices: ['sgd', 'adam'])",
    ),
    (
        "when-impossible-in-list",
        space(optimizer=["sgd", "adam"], momentum={**FLOAT01, "when": {"optimizer": ["sgd", "x"]}}),
        "search_space.momentum.when: optimizer can never be 'x'",
    ),
    (
        "when-int-out-of-range",
        space(n_layers=LAYERS, dropout={**FLOAT01, "when": {"n_layers": 7}}),
        "search_space.dropout.when: n_layers can never be 7 (range: [1, 3])",
    ),
    (
        "when-int-off-step",
        space(n={"type": "int", "low": 0, "high": 8, "step": 4}, x={**FLOAT01, "when": {"n": 2}}),
        "search_space.x.when: n can never be 2 (range: [0, 8], step 4)",
    ),
    (
        "when-fixed-other-value",
        space(act="relu", slope={**FLOAT01, "when": {"act": "leaky"}}),
        "search_space.slope.when: act can never be 'leaky' (it is fixed to 'relu')",
    ),
    (
        "when-cycle",
        space(
            a={"type": "categorical", "choices": [1, 2], "when": {"b": 1}},
            b={"type": "categorical", "choices": [1, 2], "when": {"a": 1}},
        ),
        "search_space.a.when: conditions form a cycle (a -> b -> a)",
    ),
    (
        "when-self",
        space(a={"type": "categorical", "choices": [1, 2], "when": {"a": 1}}),
        "search_space.a.when: a parameter cannot depend on itself",
    ),
    (
        "when-on-per-layer-param",
        space(
            n_layers=LAYERS,
            units={"type": "categorical", "choices": [16, 32], "per_layer": "n_layers"},
            bn={"type": "categorical", "choices": [True, False], "when": {"units": 16}},
        ),
        "search_space.bn.when: cannot depend on per-layer parameter 'units'",
    ),
    (
        "per-layer-on-float",
        space(
            n_layers={"type": "float", "low": 1, "high": 3},
            units={"type": "categorical", "choices": [16, 32], "per_layer": "n_layers"},
        ),
        "search_space.units.per_layer: 'n_layers' must be a plain int parameter",
    ),
    (
        "per-layer-on-categorical",
        space(
            n_layers=[1, 2],
            units={"type": "categorical", "choices": [16, 32], "per_layer": "n_layers"},
        ),
        "search_space.units.per_layer: 'n_layers' must be a plain int parameter",
    ),
    (
        "per-layer-unknown",
        space(units={"type": "categorical", "choices": [16, 32], "per_layer": "depth"}),
        "search_space.units.per_layer: refers to unknown parameter 'depth'",
    ),
    (
        "per-layer-negative-count",
        space(
            n_layers={"type": "int", "low": -1, "high": 3},
            units={"type": "categorical", "choices": [16, 32], "per_layer": "n_layers"},
        ),
        "search_space.n_layers.low: a layer count must be >= 0",
    ),
    # --- durations and budget ---------------------------------------------------------
    (
        "timeout-words",
        spec_with(budget={"timeout": "ten minutes"}),
        "limits.timeout: 'ten minutes' is not a duration such as 90s, 10m or 1h30m",
    ),
    (
        "timeout-unknown-unit",
        spec_with(budget={"timeout": "10y"}),
        "limits.timeout: '10y' is not a duration",
    ),
    (
        "timeout-negative",
        spec_with(budget={"timeout": -5}),
        "limits.timeout: must be a positive duration",
    ),
    (
        "timeout-zero-string",
        spec_with(budget={"timeout": "0m"}),
        "limits.timeout: must be a positive duration",
    ),
    (
        "timeout-bool",
        spec_with(budget={"timeout": True}),
        "limits.timeout: expected a duration",
    ),
    (
        "trial-timeout-bad",
        spec_with(budget={"trial_timeout": "5x"}),
        "limits.trial_timeout: '5x' is not a duration",
    ),
    (
        "max-trials-zero",
        spec_with(budget={"max_trials": 0}),
        "limits.max_trials: Input should be greater than or equal to 1",
    ),
    (
        "parallel-not-int",
        spec_with(budget={"parallel": "two"}),
        "limits.parallel: Input should be a valid integer",
    ),
    # --- strategy, fidelity -----------------------------------------------------------
    (
        "unknown-strategy",
        spec_with(strategy={"name": "bayes"}),
        "strategy.name: unknown strategy 'bayes' (known: auto, random, tpe, gp, cmaes, qmc,"
        " evolution, grid, pbt, bohb, rl, smac, darts, portfolio)",
    ),
    (
        "fidelity-min-above-max",
        spec_with(fidelity={"param": "epochs", "min": 10, "max": 5}),
        "fidelity.min: must be <= max (10 > 5)",
    ),
    (
        "fidelity-param-in-space",
        spec_with(fidelity={"param": "lr", "max": 5}),
        "fidelity.param: 'lr' is the budget; remove it from search_space",
    ),
    (
        "fidelity-without-max",
        spec_with(fidelity={"param": "epochs"}),
        "fidelity.max: Field required",
    ),
    (
        "fidelity-unknown-scheduler",
        spec_with(fidelity={"param": "epochs", "max": 9, "scheduler": "pbt"}),
        "fidelity.scheduler: unknown scheduler 'pbt'"
        " (known: auto, hyperband, asha, median, none, curve)",
    ),
    (
        "fidelity-reduction-factor",
        spec_with(fidelity={"param": "epochs", "max": 9, "reduction_factor": 1}),
        "fidelity.reduction_factor: Input should be greater than or equal to 2",
    ),
    # --- name, objective, data --------------------------------------------------------
    ("name-uppercase", spec_with(name="My_Exp"), "name: must be 1-40 lowercase letters"),
    ("name-leading-dash", spec_with(name="-exp"), "name: must be 1-40 lowercase letters"),
    ("name-too-long", spec_with(name="a" * 41), "name: must be 1-40 lowercase letters"),
    (
        "direction-not-inferable",
        spec_with(objective={"metric": "score"}),
        "objective.direction: cannot infer for metric 'score'; set minimize or maximize",
    ),
    (
        "direction-unknown",
        spec_with(objective={"metric": "score", "direction": "up"}),
        "objective.direction: Input should be 'minimize' or 'maximize'",
    ),
    (
        "empty-metric",
        spec_with(objective={"metric": "", "direction": "minimize"}),
        "objective.metric: String should have at least 1 character",
    ),
    (
        "fractions-sum-to-one",
        spec_with(data={"source": "x.csv", "validation_fraction": 0.5, "test_fraction": 0.5}),
        "data.test_fraction: validation_fraction + test_fraction must be < 1",
    ),
    (
        "fraction-above-one",
        spec_with(data={"source": "x.csv", "validation_fraction": 1.5}),
        "data.validation_fraction: Input should be less than 1",
    ),
]


@pytest.mark.parametrize(
    ("data", "expected"), [(d, e) for _, d, e in BAD_SPECS], ids=[i for i, _, _ in BAD_SPECS]
)
def test_bad_spec_names_the_field_and_the_problem(data: dict[str, Any], expected: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(data, source="exp.yaml")
    message = str(info.value)
    assert message.startswith("exp.yaml is not a valid spec:\n")
    lines = message.splitlines()[1:]
    assert any(line.startswith(expected) for line in lines), message


def test_every_problem_gets_its_own_line() -> None:
    data = spec_with(
        colour="red",
        budget={"timeout": "soon", "parallel": 0},
        search_space={"lr": {"type": "float", "low": 0, "high": 1, "log": True}},
    )
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    lines = str(info.value).splitlines()[1:]
    fields = sorted(line.split(":")[0] for line in lines)
    assert fields == ["colour", "limits.parallel", "limits.timeout", "search_space.lr.low"]


def test_the_table_is_big_enough_and_ids_are_unique() -> None:
    ids = [i for i, _, _ in BAD_SPECS]
    assert len(ids) >= 20
    assert len(set(ids)) == len(ids)


# --- errors found when planning the search -------------------------------------------

BAD_PLANS: list[tuple[str, dict[str, Any], str]] = [
    (
        "unknown-option",
        spec_with(strategy={"name": "tpe", "n_startup": 5}),
        "strategy.n_startup: unknown option for tpe (known: constant_liar, group, multivariate,"
        " n_startup_trials)",
    ),
    (
        "random-takes-no-options",
        spec_with(strategy={"name": "random", "seed": 3}),
        "strategy.seed: unknown option for random (known: none)",
    ),
    (
        "options-with-auto",
        spec_with(strategy={"n_startup_trials": 3}),
        "strategy.n_startup_trials: options need an explicit strategy name, not auto",
    ),
    (
        "option-wrong-type",
        spec_with(strategy={"name": "tpe", "n_startup_trials": "five"}),
        "strategy.n_startup_trials: must be an integer >= 0 (got 'five')",
    ),
    (
        "option-not-a-bool",
        spec_with(strategy={"name": "tpe", "multivariate": "yes"}),
        "strategy.multivariate: must be true or false (got 'yes')",
    ),
    (
        "evolution-population-too-small",
        spec_with(strategy={"name": "evolution", "population_size": 1}),
        "strategy.population_size: must be an integer >= 2 (got 1)",
    ),
    (
        "evolution-sample-above-population",
        spec_with(strategy={"name": "evolution", "population_size": 5, "sample_size": 9}),
        "strategy.sample_size: must be <= population_size (9 > 5)",
    ),
    (
        "grid-points",
        spec_with(strategy={"name": "grid", "grid_points": 1}),
        "strategy.grid_points: must be an integer >= 2 (got 1)",
    ),
    (
        "grid-too-large",
        spec_with(
            strategy={"name": "grid"},
            search_space={f"x{i}": {"type": "int", "low": 0, "high": 9} for i in range(6)},
        ),
        "strategy: the grid has more than 100000 configs",
    ),
    (
        "qmc-type",
        spec_with(strategy={"name": "qmc", "qmc_type": "lattice"}),
        "strategy.qmc_type: must be sobol or halton (got 'lattice')",
    ),
    (
        "cmaes-popsize",
        spec_with(strategy={"name": "cmaes", "popsize": 1}),
        "strategy.popsize: must be an integer >= 2 (got 1)",
    ),
    (
        "nothing-stops-the-search",
        spec_with(budget={"max_trials": None}),
        "limits: nothing would stop this search; set max_trials, timeout, patience or"
        " objective.target",
    ),
]


@pytest.mark.parametrize(
    ("data", "expected"), [(d, e) for _, d, e in BAD_PLANS], ids=[i for i, _, _ in BAD_PLANS]
)
def test_plan_search_rejects(data: dict[str, Any], expected: str) -> None:
    spec = parse_spec(data)  # valid as a document...
    with pytest.raises(SpecError) as info:
        plan_search(spec)  # ...but not as a search
    assert str(info.value).startswith(expected), str(info.value)


@pytest.mark.parametrize(
    ("budget", "extra", "stops"),
    [
        ({"max_trials": None, "patience": 5}, {}, [Patience]),
        ({"max_trials": None, "timeout": "1h"}, {}, [WallTime]),
        ({"max_trials": 20, "timeout": 90}, {}, [MaxTrials, WallTime]),
        # a finite space stops by itself once every config was tried
        ({"max_trials": None}, {"search_space": {"act": ["relu", "tanh"]}}, [SpaceExhausted]),
    ],
)
def test_something_stops_the_search(
    budget: dict[str, Any], extra: dict[str, Any], stops: list[type]
) -> None:
    plan = plan_search(parse_spec(spec_with(budget=budget, **extra)))
    assert [type(c) for c in plan.stop_conditions] == stops


def test_target_is_a_stop_condition() -> None:
    spec = parse_spec(
        spec_with(objective={"metric": "val_loss", "target": 0.1}, budget={"max_trials": None})
    )
    reasons = [type(c).__name__ for c in plan_search(spec).stop_conditions]
    assert reasons == ["TargetReached"]


def test_fidelity_makes_auto_scheduler_asha_with_the_guard_and_hyperband_without() -> None:
    with_fid = plan_search(parse_spec(spec_with(fidelity={"param": "epochs", "max": 27})))
    assert with_fid.scheduler == "asha"
    assert isinstance(with_fid.pruner, FidelityGuard)
    assert isinstance(with_fid.pruner.inner, SuccessiveHalvingPruner)
    unguarded = plan_search(
        parse_spec(spec_with(fidelity={"param": "epochs", "max": 27, "guard": False}))
    )
    assert unguarded.scheduler == "hyperband"
    assert type(unguarded.pruner) is HyperbandPruner
    bohb = plan_search(
        parse_spec(spec_with(strategy={"name": "bohb"}, fidelity={"param": "epochs", "max": 27}))
    )
    assert bohb.scheduler == "hyperband"  # BOHB is defined on Hyperband's brackets
    assert isinstance(bohb.pruner, HyperbandPruner)
    without = plan_search(parse_spec(BASE))
    assert without.scheduler == "none"
    assert isinstance(without.pruner, NopPruner)


# --- load_spec -----------------------------------------------------------------------


def test_load_spec_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(SpecError, match=r"nope\.yaml: spec file not found"):
        load_spec(path)


def test_load_spec_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: exp\nobjective:\n  metric: [loss\nsearch_space: {}\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert message.startswith(f"{path}: YAML syntax error at line ")
    line = int(message.split("at line ")[1].split(",")[0])
    assert 3 <= line <= 4  # the unclosed '[' on line 3 is noticed on line 3 or 4


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "", "42\n"])
def test_load_spec_needs_a_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match="the spec must be a YAML mapping of fields"):
        load_spec(path)


def test_load_spec_validates_and_sets_base_dir(tmp_path: Path) -> None:
    folder = tmp_path / "exp"
    folder.mkdir()
    path = folder / "spec.yaml"
    path.write_text(
        "name: exp\n"
        "objective: {metric: accuracy}\n"
        "search_space:\n"
        "  lr: {type: float, low: 0.0001, high: 0.1, log: true}\n"
        "limits: {timeout: 1h30m}\n"
        "storage: runs/study.journal\n"
    )
    spec = load_spec(path)
    assert spec.base_dir == folder.resolve()
    assert spec.resolve_path("runs/study.journal") == folder.resolve() / "runs/study.journal"
    assert spec.resolve_path("/abs/x") == Path("/abs/x")
    assert spec.limits.timeout == 5400.0
    assert spec.direction == "maximize"


def test_load_spec_reports_the_file_in_validation_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: exp\nobjective: {metric: loss}\nsearch_space: {x: {type: float}}\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert message.startswith(f"{path} is not a valid spec:")
    assert "search_space.x.low: Field required" in message
    assert "search_space.x.high: Field required" in message


# --- good specs ----------------------------------------------------------------------


def test_shorthands_list_is_categorical_scalar_is_fixed() -> None:
    spec = parse_spec(
        spec_with(
            search_space={
                "act": ["relu", "tanh"],
                "units": [32, 64, 128],
                "batch_size": 64,
                "optimizer": "adam",
                "bn": True,
                "lr": 0.001,
            }
        )
    )
    params = spec.search_space
    assert isinstance(params["act"], CategoricalParam)
    assert params["act"].choices == ["relu", "tanh"]
    assert isinstance(params["units"], CategoricalParam)
    assert params["units"].choices == [32, 64, 128]
    for name, value in {"batch_size": 64, "optimizer": "adam", "bn": True, "lr": 0.001}.items():
        param = params[name]
        assert isinstance(param, FixedParam)
        assert param.value == value
        assert type(param.value) is type(value)
    assert spec.space.searched_names == ["act", "units"]


def test_explicit_types_are_kept() -> None:
    spec = parse_spec(
        spec_with(
            search_space={
                "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
                "n": {"type": "int", "low": 1, "high": 4},
                "c": {"type": "categorical", "choices": ["a"]},
                "f": {"type": "fixed", "value": [1, 2]},
            }
        )
    )
    p = spec.search_space
    assert isinstance(p["lr"], FloatParam) and p["lr"].log
    assert isinstance(p["n"], IntParam) and (p["n"].low, p["n"].high) == (1, 4)
    assert isinstance(p["c"], CategoricalParam)
    assert isinstance(p["f"], FixedParam) and p["f"].value == [1, 2]


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("10m", 600.0),
        ("1h30m", 5400.0),
        (90, 90.0),
        ("90", 90.0),
        ("90s", 90.0),
        (2.5, 2.5),
        ("1.5h", 5400.0),
        ("500ms", 0.5),
        ("1d", 86400.0),
        (" 2m 30s ", 150.0),
        ("1H", 3600.0),
    ],
)
def test_durations(raw: Any, seconds: float) -> None:
    spec = parse_spec(spec_with(budget={"timeout": raw, "trial_timeout": raw}))
    assert spec.limits.timeout == pytest.approx(seconds)
    assert spec.limits.trial_timeout == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("metric", "direction"),
    [
        ("val_loss", "minimize"),
        ("loss", "minimize"),
        ("rmse", "minimize"),
        ("test_mae", "minimize"),
        ("validation_log_loss", "minimize"),
        ("accuracy", "maximize"),
        ("val_accuracy", "maximize"),
        ("f1", "maximize"),
        ("valid_roc_auc", "maximize"),
        ("train_r2", "maximize"),
    ],
)
def test_direction_inferred_from_metric(metric: str, direction: str) -> None:
    assert infer_direction(metric) == direction
    spec = parse_spec(spec_with(objective={"metric": metric}))
    assert spec.direction == direction
    assert spec.objective.direction == direction


def test_direction_given_wins_and_unknown_metric_needs_one() -> None:
    assert infer_direction("score") is None
    assert infer_direction("accuracy_gain") is None
    spec = parse_spec(spec_with(objective={"metric": "loss", "direction": "maximize"}))
    assert spec.direction == "maximize"
    spec = parse_spec(spec_with(objective={"metric": "score", "direction": "minimize"}))
    assert spec.direction == "minimize"


def test_defaults() -> None:
    spec = parse_spec(BASE)
    assert isinstance(spec, ExperimentSpec)
    assert spec.strategy.name == "auto" and spec.strategy.options == {}
    assert spec.limits.max_trials == 50
    assert spec.limits.parallel == 1
    assert spec.limits.retries == 2
    assert spec.limits.timeout is None and spec.limits.patience is None
    assert spec.fidelity is None and spec.data is None and spec.trainer is None
    assert spec.seed == 0
    assert spec.direction == "minimize"
    # defaults are not shared between specs
    other = parse_spec(spec_with(budget={"max_trials": 7}))
    assert other.limits.max_trials == 7 and parse_spec(BASE).limits.max_trials == 50


def test_strategy_and_trainer_options_are_kept() -> None:
    spec = parse_spec(
        spec_with(
            strategy={"name": "evolution", "population_size": 8, "sample_size": 3},
            trainer={"kind": "sklearn", "estimator": "ridge"},
        )
    )
    assert spec.strategy.name == "evolution"
    assert spec.strategy.options == {"population_size": 8, "sample_size": 3}
    assert spec.trainer is not None and spec.trainer.options == {"estimator": "ridge"}
    plan = plan_search(spec)
    assert plan.strategy == "evolution"
    assert plan.strategy_reason == "chosen in the spec"


def test_valid_conditions_and_layers_are_accepted() -> None:
    spec = parse_spec(
        spec_with(
            search_space={
                "optimizer": ["sgd", "adam"],
                "momentum": {**FLOAT01, "when": {"optimizer": "sgd"}},
                "n_layers": {"type": "int", "low": 0, "high": 4, "step": 2},
                "wide": {"type": "categorical", "choices": [True, False], "when": {"n_layers": 4}},
                "units": {"type": "categorical", "choices": [16, 32], "per_layer": "n_layers"},
                "act": "relu",
                "slope": {**FLOAT01, "when": {"act": ["relu", "leaky"]}},
            },
            fidelity={"param": "epochs", "min": 1, "max": 9},
        )
    )
    assert spec.space.is_conditional
    assert spec.fidelity is not None and (spec.fidelity.min, spec.fidelity.max) == (1, 9)


def test_budget_is_the_old_name_of_limits() -> None:
    # Specs written before the rename keep working; "budget" now means only the fidelity.
    old = parse_spec(spec_with(budget={"max_trials": 7, "parallel": 2}))
    assert old.limits.max_trials == 7 and old.limits.parallel == 2
    with pytest.raises(SpecError, match="budget: renamed to limits"):
        parse_spec(spec_with(budget={"max_trials": 7}, limits={"max_trials": 8}))
