"""The experiment spec: one YAML file, validated before anything runs.

Every validation problem becomes a :class:`~kubetune.errors.SpecError` whose lines read
``field.path: problem``, e.g. ``search_space.lr.low: must be > 0 for a log scale``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, NoReturn

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from kubetune.core.curve_pruner import CurveOptions
from kubetune.core.durations import parse_duration
from kubetune.core.metrics import infer_direction
from kubetune.core.paths import local_path
from kubetune.core.schedulers import known_schedulers
from kubetune.core.space import (
    MAX_PARAMS,
    ParamSpec,
    SearchSpace,
    SpaceError,
    shorthand_to_param,
)
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


class CurveSpec(_Section):
    """``fidelity.curve``: options of ``scheduler: curve`` (see ``core.curve_pruner``)."""

    min_points: int = Field(default=4, ge=3)
    threshold: float = Field(default=0.05, gt=0, lt=0.5)
    k: int = Field(default=1, ge=1)


# The budget's name when ``fidelity.kind`` is ``data_fraction`` and the spec gives none.
DATA_FRACTION_PARAM = "data_fraction"


class FidelitySpec(_Section):
    """``kind: param`` (default): the budget is the trainer parameter ``param`` (epochs,
    ``max_iter``...). ``kind: data_fraction``: the budget ``b`` trains on ``b / max`` of the
    training rows (stratified), for trainers without such a parameter."""

    kind: Literal["param", "data_fraction"] = "param"
    param: str = Field(min_length=1)
    min: int = Field(1, ge=1)
    max: int = Field(ge=1)
    reduction_factor: int = Field(3, ge=2)
    scheduler: str = "auto"
    curve: CurveSpec | None = None
    #: stop early stopping at a step whose ranking turns out opposite to the full budget's
    guard: bool = True

    @model_validator(mode="before")
    @classmethod
    def _default_param(cls, data: Any) -> Any:
        # A data fraction is no trainer parameter: naming one is optional.
        if isinstance(data, dict) and data.get("kind") == "data_fraction" and "param" not in data:
            data = {**data, "param": DATA_FRACTION_PARAM}
        return data

    @property
    def trainer_param(self) -> str | None:
        """The trainer parameter the budget sets; None when the budget is a data fraction."""
        return self.param if self.kind == "param" else None

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
        if self.curve is not None and self.scheduler != "curve":
            raise ValueError(
                f"curve: only scheduler curve reads it (the scheduler is {self.scheduler})"
            )
        return self

    def curve_options(self) -> CurveOptions:
        curve = self.curve or CurveSpec()
        return CurveOptions(min_points=curve.min_points, threshold=curve.threshold, k=curve.k)


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


class RetuneSpec(_Section):
    """Recurring re-tuning (a scheduled run of the same experiment on fresh data).

    With this section each data version gets its own study (``<name>.<data hash>``), a run
    whose data equals the production model's stops early, and a new search starts from
    the best configs earlier runs found.
    """

    skip_unchanged_data: bool = True
    """Stop early, pushing nothing, when the data fingerprint equals the production
    model's (``kubetune run --force`` runs anyway)."""
    warm_start: int = Field(5, ge=0, le=100)
    """How many of the best earlier configs (still valid in this space) run first; 0: off."""


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
    seed: int = Field(0, ge=0, le=2**32 - 1)  # numpy seeds are 32-bit
    storage: str | None = None
    model_repo: str | None = None
    runs_dir: str = "kubetune-runs"
    # The trial artifact store (checkpoints, files): a folder or URI such as s3://b/p
    # (default: <runs_dir>/<name>/artifacts).
    artifacts: str | None = Field(None, min_length=1)
    retune: RetuneSpec | None = None

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
            if len(value) > MAX_PARAMS:  # before validating thousands of parameters
                raise ValueError(f"{len(value)} parameters; at most {MAX_PARAMS}")
            return {k: shorthand_to_param(v) for k, v in value.items()}
        return value

    @field_validator("search_space")
    @classmethod
    def _check_space(cls, value: dict[str, ParamSpec]) -> dict[str, ParamSpec]:
        # A field validator, not a model one: its problems (all of them, one line each)
        # show up together with those of other fields.
        try:
            SearchSpace(value)
        except SpaceError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("fidelity")
    @classmethod
    def _check_fidelity_param(
        cls, value: FidelitySpec | None, info: ValidationInfo
    ) -> FidelitySpec | None:
        # search_space is declared first: here when valid (else parse_spec checks the input)
        problem = _budget_in_space(value, info.data.get("search_space"))
        if problem:
            raise ValueError(problem)
        return value

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
        assert self.objective.direction is not None  # noqa: S101 (type narrowing)
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


def _budget_in_space(fidelity: Any, space: Any) -> str | None:
    param = (
        fidelity.get("param") if isinstance(fidelity, dict) else getattr(fidelity, "param", None)
    )
    if isinstance(param, str) and isinstance(space, dict) and param in space:
        return (
            f"fidelity.param: '{param}' is the budget; remove it from search_space (the"
            " scheduler sets it)"
        )
    return None


def format_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """One ``field.path: message`` line per problem."""
    lines = []
    tags = {"float", "int", "categorical", "fixed"}
    for err in exc.errors():
        loc = [str(p) for p in err["loc"] if p not in tags and not str(p).startswith("function-")]
        text = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        # A validator may report several problems, one per line.
        for msg in text.splitlines() or [""]:
            lines.append(_format_problem(err["type"], loc, msg, prefix))
    return "\n".join(lines)


def _format_problem(kind: str, loc: list[str], msg: str, prefix: str) -> str:
    """``field.path: problem`` for one problem pydantic (or a validator) found."""
    # Validators name the sub-field as "field: problem" (pydantic can't locate them).
    sub = re.match(r"^([A-Za-z_][\w.]*): (.*)$", msg, re.S)
    if sub and " " not in sub.group(1):
        head = sub.group(1)
        loc = loc if head.startswith(".".join(loc)) and loc else [*loc, head]
        if head.startswith("search_space.") or head.startswith("fidelity."):
            loc = [head]
        msg = sub.group(2)
    if kind == "extra_forbidden":
        msg = "unknown field"
    if kind == "union_tag_invalid":
        msg = "type must be one of float, int, categorical, fixed"
    if kind == "union_tag_not_found":
        msg = "type is required (one of float, int, categorical, fixed)"
    field = ".".join([p for p in [prefix, *loc] if p])
    return f"{field or '<spec>'}: {msg}"


def parse_spec(
    data: Any, *, source: str = "<spec>", base_dir: Path | None = None
) -> ExperimentSpec:
    if not isinstance(data, dict):
        raise SpecError(f"{source}: the spec must be a YAML mapping of fields")
    try:
        spec = ExperimentSpec.model_validate(data)
    except ValidationError as exc:
        problems = format_validation_error(exc)
        # Checked on the input too: a broken search space (or fidelity) must not hide it.
        budget = _budget_in_space(data.get("fidelity"), data.get("search_space"))
        if budget and budget not in problems:
            problems += "\n" + budget
        raise SpecError(f"{source} is not a valid spec:\n{problems}") from None
    return spec.with_base_dir(base_dir or Path.cwd())


# A spec is a few KB; the limits keep a hostile or broken file cheap to refuse.
MAX_SPEC_BYTES = 256 * 1024
MAX_YAML_DEPTH = 64
MAX_YAML_NODES = 100_000  # counting every use of an alias (``*x``) again


def load_spec(path: str | Path) -> ExperimentSpec:
    """Read and validate a spec file."""
    path = Path(path)
    try:
        with path.open("rb") as file:  # bounded: /dev/zero or a huge file must not hang
            raw = file.read(MAX_SPEC_BYTES + 1)
    except FileNotFoundError:
        raise SpecError(f"{path}: spec file not found") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read spec file ({exc.strerror})") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(f"{path}: spec file is larger than {MAX_SPEC_BYTES // 1024} KiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecError(
            f"{path}: not UTF-8 text: byte 0x{raw[exc.start]:02x} at line {line},"
            f" column {column}; save the file as UTF-8"
        ) from None
    return parse_spec(_load_yaml(text, path), source=str(path), base_dir=path.resolve().parent)


def _load_yaml(text: str, path: Path) -> Any:
    try:
        loader = _SpecLoader(text)  # the reader checks the characters here already
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except _Refused as exc:
        mark = exc.problem_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(f"{path}: YAML error{at}: {exc.problem}") from None
    except yaml.MarkedYAMLError as exc:
        where = exc.problem_mark or exc.context_mark
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        reason = exc.problem or exc.context or "invalid YAML"
        raise SpecError(f"{path}: YAML syntax error{at}: {reason}") from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise SpecError(
            f"{path}: YAML syntax error at line {line}: character U+{exc.character:04X}"
            " is not allowed in YAML"
        ) from None
    except yaml.YAMLError:
        raise SpecError(f"{path}: YAML syntax error: invalid YAML") from None
    except RecursionError:  # MAX_YAML_DEPTH should come first; this is the backstop
        raise SpecError(f"{path}: YAML syntax error: nested too deeply") from None


class _Refused(yaml.MarkedYAMLError):
    """Valid YAML that a spec may not contain."""


class _SpecLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses repeated keys, deep nesting, alias bombs, bad tags."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0
        self._open_anchors: set[str] = set()
        self._anchor_sizes: dict[str, int] = {}

    def _fail(self, problem: str, mark: Any) -> NoReturn:
        raise _Refused(None, None, problem, mark)

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open_anchors:
                self._fail(f"alias *{event.anchor} is inside its own anchor", event.start_mark)
            self._count(self._anchor_sizes.get(event.anchor or "", 1), event.start_mark)
            return super().compose_node(parent, index)
        if self._depth >= MAX_YAML_DEPTH:
            self._fail(f"nested more than {MAX_YAML_DEPTH} levels deep", event.start_mark)
        before = self._nodes
        self._count(1, event.start_mark)
        anchor = event.anchor
        if anchor is not None:
            self._open_anchors.add(anchor)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if anchor is not None:
            self._open_anchors.discard(anchor)
            self._anchor_sizes[anchor] = self._nodes - before
        return node

    def _count(self, nodes: int, mark: Any) -> None:
        self._nodes += nodes
        if self._nodes > MAX_YAML_NODES:
            self._fail(f"more than {MAX_YAML_NODES} values (aliases counted at every use)", mark)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                    continue
                key = self.construct_object(key_node)
                if key in seen:
                    line = seen[key].start_mark.line + 1
                    shown = str(key) if len(str(key)) <= 30 else str(key)[:27] + "..."
                    self._fail(
                        f"duplicate key '{shown}' (first at line {line})", key_node.start_mark
                    )
                seen[key] = key_node
        return super().construct_mapping(node, deep=deep)

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ArithmeticError, LookupError, TypeError, ValueError, AttributeError):
            # e.g. ``!!int abc``, ``!!float x``, ``!!bool maybe``: PyYAML's constructors
            # raise plain Python errors for text that does not fit the tag.
            value = str(node.value)
            shown = value if len(value) <= 30 else value[:27] + "..."
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            self._fail(f"'{shown}' is not a valid {tag} value", node.start_mark)
