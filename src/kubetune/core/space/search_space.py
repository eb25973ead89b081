"""A validated search space: ordering, conditions, per-layer parameters, sampling.

Parameters are suggested to optuna under flat names (``units_0``, ``units_1``...) so every
optuna sampler works unchanged; trainers receive the structured form
(``{"n_layers": 2, "units": [64, 128]}``) built by :meth:`SearchSpace.structure`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import BaseTrial

from kubetune.core.space.params import (
    CategoricalParam,
    FixedParam,
    FloatParam,
    IntParam,
    ParamSpec,
)

# A spec is written by hand: these bound what validation, counting and grids must handle.
MAX_PARAMS = 1000
MAX_LAYERS = 64
# Names become optuna parameter names, JSON/file keys and Kubernetes-style labels.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _shown(value: Any) -> str:
    """``value`` for an error line, cut short."""
    try:
        text = repr(value)
    except ValueError:  # an int past Python's 4300-digit limit for str()
        return "a very long number"
    return text if len(text) <= 60 else text[:57] + "..."


class SpaceError(ValueError):
    """A search space refers to unknown parameters or has cycles. Message: ``name.field: ...``."""


class SearchSpace:
    def __init__(self, params: Mapping[str, ParamSpec]) -> None:
        self._params = dict(params)
        if not self._params:
            raise SpaceError("search_space: must define at least one parameter")
        # Every problem at once, one line each.
        self._choice_sets: dict[str, frozenset[Any]] = {}
        self._cardinality: dict[int, int] = {}
        problems = self._problems()
        self._order, cycle = self._dependency_order()
        if cycle:
            problems.append(cycle)
        if problems:
            raise SpaceError("\n".join(problems))
        # Conditions as sets: counting a space checks them once per branch, and a list of
        # thousands of allowed values must not make that quadratic.
        self._conditions = {
            name: [
                (other, frozenset(expected if isinstance(expected, list) else [expected]))
                for other, expected in (p.when or {}).items()
            ]
            for name, p in self._params.items()
        }

    # --- introspection -------------------------------------------------------------------

    @property
    def params(self) -> dict[str, ParamSpec]:
        return dict(self._params)

    @property
    def names(self) -> list[str]:
        """Parameter names in the order they are sampled (dependencies first)."""
        return list(self._order)

    @property
    def is_conditional(self) -> bool:
        return any(
            p.when is not None or getattr(p, "per_layer", None) is not None
            for p in self._params.values()
        )

    @property
    def is_numeric(self) -> bool:
        """True when every searched parameter is a float or an int."""
        return all(isinstance(p, FloatParam | IntParam | FixedParam) for p in self._params.values())

    @property
    def searched_names(self) -> list[str]:
        return [n for n in self._order if not isinstance(self._params[n], FixedParam)]

    def distributions(self) -> dict[str, BaseDistribution]:
        """Every flat parameter any trial may suggest (per-layer ones at their max count)."""
        out: dict[str, BaseDistribution] = {}
        for name in self._order:
            param = self._params[name]
            if isinstance(param, FixedParam):
                continue
            for flat in self._flat_names(name, self._max_layers(name)):
                out[flat] = to_distribution(param)
        return out

    def cardinality(self, cap: int = 10**9) -> int | None:
        """Number of distinct configs, or None when a continuous parameter makes it infinite.

        Counting stops past ``cap``: any number above ``cap`` means "more than ``cap``".
        """
        if any(isinstance(p, FloatParam) and p.step is None for p in self._params.values()):
            return None
        from kubetune.core.space.grid import count_configs

        # Planning and `validate` ask more than once; a branchy space costs a fraction of a
        # second to count.
        if cap not in self._cardinality:
            self._cardinality[cap] = count_configs(self, points=None, cap=cap)
        return self._cardinality[cap]

    # --- sampling ------------------------------------------------------------------------

    def suggest(self, trial: BaseTrial) -> dict[str, Any]:
        """Suggest every active parameter on ``trial``; return the structured params."""
        values: dict[str, Any] = {}
        for name in self._order:
            param = self._params[name]
            if not self.is_active(name, values):
                continue
            if isinstance(param, FixedParam):
                values[name] = param.value
                continue
            layers = getattr(param, "per_layer", None)
            if layers is None:
                values[name] = _suggest_one(trial, name, param)
            else:
                values[name] = [
                    _suggest_one(trial, flat, param)
                    for flat in self._flat_names(name, int(values[layers]))
                ]
        return values

    def structure(self, flat: Mapping[str, Any]) -> dict[str, Any]:
        """Turn optuna's flat params (``units_0``...) back into the structured form."""
        values: dict[str, Any] = {}
        for name in self._order:
            param = self._params[name]
            if not self.is_active(name, values):
                continue
            layers: str | None = getattr(param, "per_layer", None)
            if isinstance(param, FixedParam):
                values[name] = param.value
            elif layers is None:
                if name in flat:
                    values[name] = flat[name]
            else:
                count = int(values[layers])
                values[name] = [flat[f] for f in self._flat_names(name, count) if f in flat]
        return values

    def is_active(self, name: str, values: Mapping[str, Any]) -> bool:
        param = self._params[name]
        layers = getattr(param, "per_layer", None)
        if layers is not None and layers not in values:
            return False  # no layer count (it is itself inactive): no per-layer values
        for other, allowed in self._conditions[name]:
            if other not in values:
                return False  # the parameter it depends on is itself inactive
            try:
                if values[other] not in allowed:
                    return False
            except TypeError:  # a fixed list or mapping never equals a condition's scalar
                return False
        return True

    def describe(self) -> Iterator[tuple[str, str]]:
        """(name, human description) pairs, for ``kubetune validate``."""
        for name in self._order:
            yield name, _describe(self._params[name])

    # --- helpers -------------------------------------------------------------------------

    def _flat_names(self, name: str, count: int) -> list[str]:
        if getattr(self._params[name], "per_layer", None) is None:
            return [name]
        return [f"{name}_{i}" for i in range(count)]

    def _max_layers(self, name: str) -> int:
        layers = getattr(self._params[name], "per_layer", None)
        if layers is None:
            return 1
        count_param = self._params[layers]
        assert isinstance(count_param, IntParam)  # noqa: S101 (type narrowing)
        return count_param.high

    def _problems(self) -> list[str]:
        if len(self._params) > MAX_PARAMS:
            return [f"search_space: {len(self._params)} parameters; at most {MAX_PARAMS}"]
        problems = [
            f"search_space: parameter name {_shown(name)} must be 1-64 ASCII letters, digits"
            " or '_', not starting with a digit (names become optuna parameters, file keys"
            " and labels)"
            for name in self._params
            if not isinstance(name, str) or not _NAME.fullmatch(name)
        ]
        for name, param in self._params.items():
            problems += self._when_problems(name, param)
            problems += self._layer_problems(name, param)
        if not problems:
            problems += self._flat_name_problems()
        return problems

    def _when_problems(self, name: str, param: ParamSpec) -> list[str]:
        problems = []
        for other, expected in (param.when or {}).items():
            if other not in self._params:
                known = ", ".join(sorted(self._params)[:20])
                more = ", ..." if len(self._params) > 20 else ""
                problems.append(
                    f"search_space.{name}.when: refers to unknown parameter {_shown(other)}"
                    f" (known: {known}{more})"
                )
            elif other == name:
                problems.append(f"search_space.{name}.when: a parameter cannot depend on itself")
            elif getattr(self._params[other], "per_layer", None) is not None:
                problems.append(
                    f"search_space.{name}.when: cannot depend on per-layer parameter '{other}'"
                )
            elif problem := self._condition_problem(name, other, expected):
                problems.append(problem)
        return problems

    def _layer_problems(self, name: str, param: ParamSpec) -> list[str]:
        layers = getattr(param, "per_layer", None)
        if layers is None:
            return []
        target = self._params.get(layers)
        if target is None:
            return [f"search_space.{name}.per_layer: refers to unknown parameter {_shown(layers)}"]
        if not isinstance(target, IntParam) or getattr(target, "per_layer", None):
            return [f"search_space.{name}.per_layer: '{layers}' must be a plain int parameter"]
        if target.low < 0:
            return [f"search_space.{layers}.low: a layer count must be >= 0"]
        if target.high > MAX_LAYERS:
            # Every layer is its own optuna parameter; grids and counts grow as choices**layers.
            return [
                f"search_space.{layers}.high: a layer count must be <= {MAX_LAYERS}"
                f" (got {target.high}; '{name}' has one value per layer)"
            ]
        return []

    def _flat_name_problems(self) -> list[str]:
        """Per-layer names (``units_0``...) must not be another parameter's name.

        (Two per-layer names cannot meet: a layer suffix is ``_`` and digits only.)
        """
        plain = {n for n, p in self._params.items() if getattr(p, "per_layer", None) is None}
        return [
            f"search_space.{name}.per_layer: its layer '{flat}' has the same name as"
            f" parameter '{flat}'; rename one"
            for name in self._params
            if name not in plain
            for flat in self._flat_names(name, self._max_layers(name))
            if flat in plain
        ]

    def _condition_problem(self, name: str, other: str, expected: Any) -> str | None:
        target = self._params[other]
        wanted = expected if isinstance(expected, list) else [expected]
        if isinstance(target, CategoricalParam):
            if other not in self._choice_sets:
                self._choice_sets[other] = frozenset(target.choices)
            unknown = [v for v in wanted if v not in self._choice_sets[other]]
            if unknown:
                return (
                    f"search_space.{name}.when: {other} can never be {unknown[0]!r}"
                    f" (choices: {_shown(target.choices)})"
                )
        elif isinstance(target, FixedParam):
            if target.value not in wanted:
                return (
                    f"search_space.{name}.when: {other} can never be {wanted[0]!r}"
                    f" (it is fixed to {_shown(target.value)})"
                )
        else:
            impossible = [v for v in wanted if not _in_range(target, v)]
            if impossible:
                step = f", step {target.step}" if target.step not in (None, 1) else ""
                return (
                    f"search_space.{name}.when: {other} can never be {impossible[0]!r}"
                    f" (range: [{target.low}, {target.high}]{step})"
                )
        return None

    def _dependency_order(self) -> tuple[list[str], str | None]:
        """Dependencies first, else the user's order; and a cycle's problem line, if any.

        Iterative (a chain of a thousand conditions must not exhaust Python's stack).
        """
        deps: dict[str, list[str]] = {}
        for name, p in self._params.items():
            layers: str | None = getattr(p, "per_layer", None)
            wanted = set((p.when or {}).keys()) | ({layers} if layers else set())
            # (unknown names and self-dependencies are reported already)
            deps[name] = sorted(d for d in wanted if d in self._params and d != name)
        order: list[str] = []
        done: set[str] = set()
        for root in self._params:  # keep the user's order where dependencies allow
            if root in done:
                continue
            path, on_path = [root], {root}
            pending = [iter(deps[root])]
            while pending:
                dep = next(pending[-1], None)
                if dep is None:
                    pending.pop()
                    name = path.pop()
                    on_path.discard(name)
                    done.add(name)
                    order.append(name)
                elif dep in on_path:
                    cycle = " -> ".join([*path, dep])
                    return order, f"search_space.{dep}.when: conditions form a cycle ({cycle})"
                elif dep not in done:
                    path.append(dep)
                    on_path.add(dep)
                    pending.append(iter(deps[dep]))
        return order, None


def _in_range(param: FloatParam | IntParam, value: Any) -> bool:
    """Whether a sampled value of ``param`` can equal ``value``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if not param.low <= value <= param.high:
        return False
    if isinstance(param, IntParam):
        return float(value).is_integer() and (int(value) - param.low) % param.step == 0
    return True


def to_distribution(param: ParamSpec) -> BaseDistribution:
    if isinstance(param, FloatParam):
        return FloatDistribution(param.low, param.high, log=param.log, step=param.step)
    if isinstance(param, IntParam):
        return IntDistribution(param.low, param.high, log=param.log, step=param.step)
    if isinstance(param, CategoricalParam):
        return CategoricalDistribution(param.choices)
    raise TypeError(f"fixed parameters have no distribution: {param!r}")


def _suggest_one(trial: BaseTrial, name: str, param: ParamSpec) -> Any:
    if isinstance(param, FloatParam):
        return trial.suggest_float(name, param.low, param.high, log=param.log, step=param.step)
    if isinstance(param, IntParam):
        return trial.suggest_int(name, param.low, param.high, log=param.log, step=param.step)
    if isinstance(param, CategoricalParam):
        return trial.suggest_categorical(name, param.choices)
    raise TypeError(f"cannot suggest {param!r}")


def _describe(param: ParamSpec) -> str:
    if isinstance(param, FixedParam):
        text = f"fixed {param.value!r}"
    elif isinstance(param, CategoricalParam):
        text = f"one of {param.choices}"
    else:
        scale = "log" if param.log else "linear"
        kind = "float" if isinstance(param, FloatParam) else "int"
        text = f"{kind} in [{param.low}, {param.high}] ({scale}"
        text += f", step {param.step})" if param.step is not None and param.step != 1 else ")"
    layers = getattr(param, "per_layer", None)
    if layers:
        text += f", one per layer of {layers}"
    if param.when:
        cond = ", ".join(
            f"{k} in {v}" if isinstance(v, list) else f"{k} = {v}" for k, v in param.when.items()
        )
        text += f", only when {cond}"
    return text
