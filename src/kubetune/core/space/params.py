"""Parameter definitions of a search space, as written in a spec."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Scalar = str | int | float | bool
# ``when: {optimizer: sgd}`` or ``when: {optimizer: [sgd, adam]}``
Condition = dict[str, Scalar | list[Scalar]]


class _Param(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    when: Condition | None = None
    """The parameter exists only when every named parameter has (one of) the given value(s)."""


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
        if self.low > self.high:
            raise ValueError(f"low: must be <= high ({self.low} > {self.high})")
        if self.log and self.low <= 0:
            raise ValueError("low: must be > 0 for a log scale")
        if self.log and self.step is not None:
            raise ValueError("step: cannot be combined with log: true")
        if self.step is not None and self.step <= 0:
            raise ValueError("step: must be > 0")
        return self


class IntParam(_Repeatable):
    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = 1

    @model_validator(mode="after")
    def _check_range(self) -> IntParam:
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

    @model_validator(mode="after")
    def _check_choices(self) -> CategoricalParam:
        if not self.choices:
            raise ValueError("choices: must hold at least one value")
        if len(set(map(repr, self.choices))) != len(self.choices):
            raise ValueError("choices: must not repeat a value")
        # optuna stores 1, 1.0 and true as one value, so the best params and the final
        # training would silently get another choice than the one that was scored.
        for i, first in enumerate(self.choices):
            for second in self.choices[i + 1 :]:
                if first == second:
                    raise ValueError(
                        f"choices: {first!r} and {second!r} are the same value to the search;"
                        " keep one (quote it to make it a string)"
                    )
        return self


class FixedParam(_Param):
    type: Literal["fixed"]
    value: Any


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
