"""The experiment spec: one YAML file, validated before anything runs.

Every validation problem becomes a :class:`~kubetune.errors.SpecError` whose lines read
``field.path: problem``, e.g. ``search_space.lr.low: must be > 0 for a log scale``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from kubetune.core.durations import parse_duration
from kubetune.core.metrics import infer_direction
from kubetune.core.paths import local_path
from kubetune.core.schedulers import known_schedulers
from kubetune.core.space import ParamSpec, SearchSpace, SpaceError, shorthand_to_param
from kubetune.core.strategies import known_strategies
from kubetune.errors import SpecError

# Where models go when neither a flag, KUBETUNE_MODEL_REPO nor the spec says.
DEFAULT_MODEL_REPO = "model-repo"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ObjectiveSpec(_Section):
    metric: str = Field(min_length=1)
    direction: Literal["minimize", "maximize"] | None = None
    target: float | None = None

    @model_validator(mode="after")
    def _resolve_direction(self) -> ObjectiveSpec:
        if self.direction is None:
            self.direction = infer_direction(self.metric)
            if self.direction is None:
                raise ValueError(
                    f"direction: cannot infer for metric '{self.metric}'; set minimize or maximize"
                )
        return self


class DataSpec(_Section):
    source: str = Field(min_length=1)
    target: str | None = None
    task: Literal["auto", "classification", "regression"] = "auto"
    features: list[str] | None = None
    validation_fraction: float = Field(0.2, gt=0, lt=1)
    test_fraction: float = Field(0.2, gt=0, lt=1)
    image_shape: tuple[int, int, int] | None = None

    @model_validator(mode="after")
    def _check_fractions(self) -> DataSpec:
        if self.validation_fraction + self.test_fraction >= 1:
            raise ValueError("test_fraction: validation_fraction + test_fraction must be < 1")
        return self


class TrainerSpec(BaseModel):
    """``kind`` plus the trainer's own options (``estimator``, ``epochs``, ``function``...)."""

    model_config = ConfigDict(extra="allow")
    kind: str = Field(min_length=1)

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class StrategySpec(BaseModel):
    """``name`` plus the strategy's own options (``n_startup_trials``, ``population_size``...)."""

    model_config = ConfigDict(extra="allow")
    name: str = "auto"

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        # The strategy registry is the one list of names (no copy here to fall out of date).
        if value not in (known := known_strategies()):
            raise ValueError(f"unknown strategy '{value}' (known: {', '.join(known)})")
        return value

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ExecutorSpec(BaseModel):
    """Where trials run: ``kind`` (see ``kubetune.executors``) plus that executor's options."""

    model_config = ConfigDict(extra="allow")
    kind: str = Field("local", min_length=1)

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class FidelitySpec(_Section):
    param: str = Field(min_length=1)
    min: int = Field(1, ge=1)
    max: int = Field(ge=1)
    reduction_factor: int = Field(3, ge=2)
    scheduler: str = "auto"

    @field_validator("scheduler")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in (known := known_schedulers()):
            raise ValueError(f"unknown scheduler '{value}' (known: {', '.join(known)})")
        return value

    @model_validator(mode="after")
    def _check_range(self) -> FidelitySpec:
        if self.min > self.max:
            raise ValueError(f"min: must be <= max ({self.min} > {self.max})")
        return self


class LimitsSpec(_Section):
    """When the search stops and how wide it runs (``budget:`` is its old, deprecated name)."""

    max_trials: int | None = Field(default=50, ge=1)
    timeout: float | None = None
    patience: int | None = Field(default=None, ge=1)
    parallel: int = Field(default=1, ge=1, le=256)
    retries: int = Field(default=2, ge=0, le=20)
    trial_timeout: float | None = None

    @field_validator("timeout", "trial_timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float | None:
        return None if value is None else parse_duration(value)


class ExperimentSpec(_Section):
    name: str
    objective: ObjectiveSpec
    search_space: dict[str, ParamSpec]
    data: DataSpec | None = None
    trainer: TrainerSpec | None = None
    strategy: StrategySpec = StrategySpec()
    fidelity: FidelitySpec | None = None
    limits: LimitsSpec = LimitsSpec()
    executor: ExecutorSpec = Field(default_factory=lambda: ExecutorSpec(kind="local"))
    seed: int = Field(0, ge=0)
    storage: str | None = None
    model_repo: str | None = None
    runs_dir: str = "kubetune-runs"

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _space: SearchSpace | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _rename_budget(cls, data: Any) -> Any:
        # "budget" used to name these run limits; it now means only the fidelity a trial gets.
        if isinstance(data, dict) and "budget" in data:
            if "limits" in data:
                raise ValueError("budget: renamed to limits; give only limits")
            data = {("limits" if k == "budget" else k): v for k, v in data.items()}
        return data

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        # Names end up in file paths, Kubernetes labels and Job names.
        if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?", value):
            raise ValueError(
                "must be 1-40 lowercase letters, digits or '-', starting and ending"
                f" with a letter or digit (got '{value}')"
            )
        return value

    @field_validator("search_space", mode="before")
    @classmethod
    def _expand_shorthands(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: shorthand_to_param(v) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _check_cross_fields(self) -> ExperimentSpec:
        try:
            self._space = SearchSpace(self.search_space)
        except SpaceError as exc:
            raise ValueError(str(exc)) from None
        if self.fidelity and self.fidelity.param in self.search_space:
            raise ValueError(
                f"fidelity.param: '{self.fidelity.param}' is the budget; remove it from"
                " search_space (the scheduler sets it)"
            )
        return self

    @property
    def space(self) -> SearchSpace:
        if self._space is None:
            self._space = SearchSpace(self.search_space)
        return self._space

    @property
    def base_dir(self) -> Path:
        """Directory relative input paths are resolved against (the spec's folder)."""
        return self._base_dir

    @property
    def direction(self) -> Literal["minimize", "maximize"]:
        assert self.objective.direction is not None
        return self.objective.direction

    def output_path(self, value: str) -> Path:
        """Outputs (runs, study file, model repository) are relative to the working directory."""
        return _local(value, Path.cwd())

    def resolve_path(self, value: str) -> Path:
        """Inputs (data files) are relative to the spec file's folder."""
        return _local(value, self._base_dir)

    def updated(
        self, section: str, changes: dict[str, Any], *, source: str = "<spec>"
    ) -> ExperimentSpec:
        """A copy with fields of one section changed, validated again like a loaded spec."""
        data = self.model_dump(mode="json", exclude_none=True)
        data.setdefault(section, {}).update(changes)
        return parse_spec(data, source=source, base_dir=self._base_dir)

    def replaced(self, changes: dict[str, Any], *, source: str = "<spec>") -> ExperimentSpec:
        """A copy with top-level fields (``seed``, ``storage``...) changed, validated again."""
        data = self.model_dump(mode="json", exclude_none=True)
        data.update(changes)
        return parse_spec(data, source=source, base_dir=self._base_dir)

    def with_base_dir(self, base_dir: Path) -> ExperimentSpec:
        self._base_dir = base_dir
        return self


def _local(value: str, base_dir: Path) -> Path:
    path = local_path(value, base_dir)
    if path is None:
        raise SpecError(f"{value!r}: only a local path or a file:// URI can be used here")
    return path


def format_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """One ``field.path: message`` line per problem."""
    lines = []
    tags = {"float", "int", "categorical", "fixed"}
    for err in exc.errors():
        loc = [str(p) for p in err["loc"] if p not in tags and not str(p).startswith("function-")]
        msg = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        # Validators name the sub-field as "field: problem" (pydantic can't locate them).
        sub = re.match(r"^([A-Za-z_][\w.]*): (.*)$", msg, re.S)
        if sub and " " not in sub.group(1):
            head = sub.group(1)
            loc = loc if head.startswith(".".join(loc)) and loc else [*loc, head]
            if head.startswith("search_space.") or head.startswith("fidelity."):
                loc = [head]
            msg = sub.group(2)
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        if err["type"] == "union_tag_invalid":
            msg = "type must be one of float, int, categorical, fixed"
        if err["type"] == "union_tag_not_found":
            msg = "type is required (one of float, int, categorical, fixed)"
        field = ".".join([p for p in [prefix, *loc] if p])
        lines.append(f"{field or '<spec>'}: {msg}")
    return "\n".join(lines)


def parse_spec(
    data: Any, *, source: str = "<spec>", base_dir: Path | None = None
) -> ExperimentSpec:
    if not isinstance(data, dict):
        raise SpecError(f"{source}: the spec must be a YAML mapping of fields")
    try:
        spec = ExperimentSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"{source} is not a valid spec:\n{format_validation_error(exc)}") from None
    return spec.with_base_dir(base_dir or Path.cwd())


def load_spec(path: str | Path) -> ExperimentSpec:
    """Read and validate a spec file."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError(f"{path}: spec file not found") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read spec file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        reason = getattr(exc, "problem", None) or "invalid YAML"
        raise SpecError(f"{path}: YAML syntax error{at}: {reason}") from None
    return parse_spec(data, source=str(path), base_dir=path.resolve().parent)
