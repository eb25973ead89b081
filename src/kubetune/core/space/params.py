"""Parameter definitions of a search space, as written in a spec."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Scalar = str | int | float | bool
# ``when: {optimizer: sgd}`` or ``when: {optimizer: [sgd, adam]}``
Condition = dict[str, Scalar | list[Scalar]]


# Ranges stay within the integers a float holds exactly: samplers compute in floats, and a
# larger range (10**30) overflows counting and grid building.
MAX_ABS_INT = 2**53
# A stepped float range holds at most this many values: step 1e-300 on [0, 1] is no grid.
MAX_STEPS = 2**53
_SCALARS = "strings, numbers or true/false"
_OK = object()


def _kind(value: Any) -> str:
    names = {type(None): "null", list: "a list", dict: "a mapping"}
    return names.get(type(value), f"a {type(value).__name__}")


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float)  # bool is an int


class _Param(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    when: Condition | None = None
    """The parameter exists only when every named parameter has (one of) the given value(s)."""

    @field_validator("when", mode="before")
    @classmethod
    def _scalar_conditions(cls, value: Any) -> Any:
        # One clear line instead of pydantic's one line per member of the Scalar union.
        if isinstance(value, dict):
            for other, expected in value.items():
                items = expected if isinstance(expected, list) else [expected]
                bad = next((v for v in items if not _is_scalar(v)), _OK)
                if bad is not _OK:
                    raise ValueError(
                        f"the value for '{other}' must be one of {_SCALARS}, or a"
                        f" list of them (got {_kind(bad)})"
                    )
        return value


class _Repeatable(_Param):
    per_layer: str | None = None
    """Name of an int parameter: one value of this parameter is drawn per layer."""


class FloatParam(_Repeatable):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = None

    @model_validator(mode="after")
    def _check_range(self) -> FloatParam:
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError("low: low and high must be finite numbers")
        if not math.isfinite(self.high - self.low):
            raise ValueError("high: high - low must be a finite number")
        if self.low > self.high:
            raise ValueError(f"low: must be <= high ({self.low} > {self.high})")
        if self.log and self.low <= 0:
            raise ValueError("low: must be > 0 for a log scale")
        if self.log and self.step is not None:
            raise ValueError("step: cannot be combined with log: true")
        if self.step is not None and self.step <= 0:
            raise ValueError("step: must be > 0")
        if self.step is not None and not (self.high - self.low) / self.step <= MAX_STEPS:
            raise ValueError(
                f"step: {self.step} cuts [{self.low}, {self.high}] into more than 2**53 values;"
                " use a larger step, or no step for a continuous range"
            )
        return self


class IntParam(_Repeatable):
    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = 1

    @model_validator(mode="after")
    def _check_range(self) -> IntParam:
        for field in ("low", "high", "step"):
            value = getattr(self, field)
            if abs(value) > MAX_ABS_INT:
                raise ValueError(f"{field}: must be between -2**53 and 2**53 (got {_short(value)})")
        if self.low > self.high:
            raise ValueError(f"low: must be <= high ({self.low} > {self.high})")
        if self.log and self.low < 1:
            raise ValueError("low: must be >= 1 for a log scale")
        if self.log and self.step != 1:
            raise ValueError("step: cannot be combined with log: true")
        if self.step < 1:
            raise ValueError("step: must be >= 1")
        return self


class CategoricalParam(_Repeatable):
    type: Literal["categorical"]
    choices: list[Scalar]

    @field_validator("choices", mode="before")
    @classmethod
    def _scalar_choices(cls, value: Any) -> Any:
        # One clear line instead of pydantic's one line per member of the Scalar union.
        if isinstance(value, list):
            for i, choice in enumerate(value):
                if not _is_scalar(choice):
                    raise ValueError(f"choice {i} is {_kind(choice)}; choices must be {_SCALARS}")
                if isinstance(choice, float) and math.isnan(choice):
                    raise ValueError(
                        f"choice {i} is nan, which never equals itself; the search"
                        " could not tell it apart"
                    )
        return value

    @model_validator(mode="after")
    def _check_choices(self) -> CategoricalParam:
        if not self.choices:
            raise ValueError("choices: must hold at least one value")
        if len(set(map(repr, self.choices))) != len(self.choices):
            raise ValueError("choices: must not repeat a value")
        # optuna stores 1, 1.0 and true as one value, so the best params and the final
        # training would silently get another choice than the one that was scored.
        seen: dict[Scalar, int] = {}  # equal numbers hash alike: linear, not quadratic
        for i, choice in enumerate(self.choices):
            first = seen.setdefault(choice, i)
            if first != i:
                raise ValueError(
                    f"choices: {self.choices[first]!r} and {choice!r} are the same value to"
                    " the search; keep one (quote it to make it a string)"
                )
        return self


class FixedParam(_Param):
    type: Literal["fixed"]
    value: Any


def _short(value: int) -> str:
    if abs(value) < 10**30:
        return str(value)
    return f"{'-' if value < 0 else ''}about 10**{int(abs(value).bit_length() * math.log10(2))}"


ParamSpec = Annotated[
    FloatParam | IntParam | CategoricalParam | FixedParam, Field(discriminator="type")
]


def shorthand_to_param(raw: Any) -> Any:
    """Accept ``[a, b]`` for a categorical and a bare scalar for a fixed value."""
    if isinstance(raw, list):
        return {"type": "categorical", "choices": raw}
    if isinstance(raw, str | int | float | bool) or raw is None:
        return {"type": "fixed", "value": raw}
    return raw
