"""A validated search space: ordering, conditions, per-layer parameters, sampling.

Parameters are suggested to optuna under flat names (``units_0``, ``units_1``...) so every
optuna sampler works unchanged; trainers receive the structured form
(``{"n_layers": 2, "units": [64, 128]}``) built by :meth:`SearchSpace.structure`.
"""

from __future__ import annotations

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


class SpaceError(ValueError):
    """A search space refers to unknown parameters or has cycles. Message: ``name.field: ...``."""


class SearchSpace:
    def __init__(self, params: Mapping[str, ParamSpec]) -> None:
        self._params = dict(params)
        if not self._params:
            raise SpaceError("search_space: must define at least one parameter")
        self._check_references()
        self._order = self._dependency_order()

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

        return count_configs(self, points=None, cap=cap)

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
        when = param.when
        if not when:
            return True
        for other, expected in when.items():
            if other not in values:
                return False  # the parameter it depends on is itself inactive
            allowed = expected if isinstance(expected, list) else [expected]
            if values[other] not in allowed:
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
        assert isinstance(count_param, IntParam)
        return count_param.high

    def _check_references(self) -> None:
        for name, param in self._params.items():
            for other, expected in (param.when or {}).items():
                if other not in self._params:
                    raise SpaceError(
                        f"search_space.{name}.when: refers to unknown parameter '{other}'"
                        f" (known: {', '.join(sorted(self._params))})"
                    )
                if other == name:
                    raise SpaceError(
                        f"search_space.{name}.when: a parameter cannot depend on itself"
                    )
                if getattr(self._params[other], "per_layer", None) is not None:
                    raise SpaceError(
                        f"search_space.{name}.when: cannot depend on per-layer parameter '{other}'"
                    )
                self._check_condition_values(name, other, expected)
            layers = getattr(param, "per_layer", None)
            if layers is not None:
                target = self._params.get(layers)
                if target is None:
                    raise SpaceError(
                        f"search_space.{name}.per_layer: refers to unknown parameter '{layers}'"
                    )
                if not isinstance(target, IntParam) or getattr(target, "per_layer", None):
                    raise SpaceError(
                        f"search_space.{name}.per_layer: '{layers}' must be a plain int parameter"
                    )
                if target.low < 0:
                    raise SpaceError(f"search_space.{layers}.low: a layer count must be >= 0")

    def _check_condition_values(self, name: str, other: str, expected: Any) -> None:
        target = self._params[other]
        wanted = expected if isinstance(expected, list) else [expected]
        if isinstance(target, CategoricalParam):
            unknown = [v for v in wanted if v not in target.choices]
            if unknown:
                raise SpaceError(
                    f"search_space.{name}.when: {other} can never be {unknown[0]!r}"
                    f" (choices: {target.choices})"
                )
        elif isinstance(target, FixedParam):
            if target.value not in wanted:
                raise SpaceError(
                    f"search_space.{name}.when: {other} can never be {wanted[0]!r}"
                    f" (it is fixed to {target.value!r})"
                )
        else:
            impossible = [v for v in wanted if not _in_range(target, v)]
            if impossible:
                step = f", step {target.step}" if target.step not in (None, 1) else ""
                raise SpaceError(
                    f"search_space.{name}.when: {other} can never be {impossible[0]!r}"
                    f" (range: [{target.low}, {target.high}]{step})"
                )

    def _dependency_order(self) -> list[str]:
        deps: dict[str, set[str]] = {}
        for name, p in self._params.items():
            layers: str | None = getattr(p, "per_layer", None)
            deps[name] = set((p.when or {}).keys()) | ({layers} if layers else set())
        order: list[str] = []
        visiting: set[str] = set()

        def visit(name: str, path: list[str]) -> None:
            if name in order:
                return
            if name in visiting:
                cycle = " -> ".join([*path, name])
                raise SpaceError(f"search_space.{name}.when: conditions form a cycle ({cycle})")
            visiting.add(name)
            for dep in sorted(deps[name]):
                visit(dep, [*path, name])
            visiting.discard(name)
            order.append(name)

        for name in self._params:  # keep the user's order where dependencies allow
            visit(name, [])
        return order


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
