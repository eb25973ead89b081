"""The final summary of a run: one record, printable in a terminal and storable as JSON."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

__all__ = ["RunSummary", "format_duration", "format_number", "render_summary"]

_MISSING = "—"


def format_number(value: Any, digits: int = 4) -> str:
    """``value`` with ``digits`` significant digits; ``—`` for None."""
    if value is None:
        return _MISSING
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            value = float(value)  # numpy scalars and the like
        except (TypeError, ValueError):
            return str(value)
    return f"{value:.{digits}g}"


def format_duration(seconds: float | None) -> str:
    """``1h 02m 03s`` style; sub-minute durations keep one decimal."""
    if seconds is None or not math.isfinite(seconds):
        return _MISSING
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    return f"{minutes}m {secs:02d}s"


def _json_safe(value: Any) -> Any:
    """Plain JSON types only: NaN/inf become None (JSON has no such numbers)."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(v) for v in value]
    item = getattr(value, "item", None)  # numpy scalar -> Python scalar
    if callable(item):
        try:
            return _json_safe(item())
        except (TypeError, ValueError):
            pass
    return str(value)


@dataclass
class RunSummary:
    """What a run produced, for the terminal, the HTML report and pipeline outputs."""

    experiment: str
    metric: str
    direction: str  # "maximize" | "minimize"
    best_params: dict[str, Any] = field(default_factory=dict)
    best_value: float | None = None
    best_trial_number: int | None = None
    validation_metrics: dict[str, float] = field(default_factory=dict)
    test_metrics: dict[str, float] = field(default_factory=dict)
    completed: int = 0
    pruned: int = 0
    failed: int = 0  # failed for good
    requeued: int = 0  # attempts whose config was queued to run again (not counted above)
    stop_reason: str = ""  # the message
    stop_kind: str = ""  # a kubetune.core.stop_reason.StopKind value ("max_trials", ...)
    elapsed_s: float = 0.0
    model_uri: str | None = None
    model_version: int | None = None
    promoted: bool | None = None  # whether the production alias moved to this run's model
    report_path: str | None = None
    failed_step: str | None = None  # the step after the search that failed, if one did
    error: str | None = None
    skipped: str | None = None  # why a re-tuning run stopped before searching (not an error)
    warm_started: int = 0  # configs of earlier runs that ran first
    study: str | None = None  # the study's name in the storage

    @property
    def finished(self) -> int:
        return self.completed + self.pruned + self.failed

    def to_dict(self) -> dict[str, Any]:
        """A dict that ``json.dumps`` accepts as is (``allow_nan=False`` included)."""
        return {f.name: _json_safe(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSummary:
        """Inverse of :meth:`to_dict`; unknown keys are ignored so older readers keep working."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _metrics_table(summary: RunSummary) -> Table:
    table = Table(title="Metrics", title_justify="left", expand=False)
    table.add_column("metric")
    # Two different models: say which, so nobody reads them as one model's two scores.
    table.add_column("validation (best trial)", justify="right")
    table.add_column("test (final model)", justify="right")
    names = list(summary.validation_metrics)
    names += [n for n in summary.test_metrics if n not in summary.validation_metrics]
    for name in names:
        table.add_row(
            Text(name),
            format_number(summary.validation_metrics.get(name), 6),
            format_number(summary.test_metrics.get(name), 6),
        )
    return table


def _params_table(summary: RunSummary) -> Table:
    table = Table(title="Best parameters", title_justify="left", expand=False)
    table.add_column("parameter")
    table.add_column("value", justify="right")
    for name, value in summary.best_params.items():
        shown = format_number(value, 6) if isinstance(value, float) else str(value)
        table.add_row(Text(str(name)), Text(shown))
    return table


def summary_rows(summary: RunSummary) -> list[tuple[str, str]]:
    """The run's key facts as (label, text) pairs, shared by the terminal and HTML views."""
    best = format_number(summary.best_value, 6)
    if summary.best_trial_number is not None:
        best += f" (trial {summary.best_trial_number})"
    model = summary.model_uri or _MISSING
    if summary.model_version is not None:
        model += f" (version {summary.model_version})"
    return [
        ("experiment", summary.experiment),
        ("objective", f"{summary.direction} {summary.metric}"),
        (f"best {summary.metric}", best),
        (
            "trials",
            f"{summary.finished} finished: {summary.completed} completed, "
            f"{summary.pruned} pruned, {summary.failed} failed"
            + (f" ({summary.requeued} more attempts ran again)" if summary.requeued else ""),
        ),
        ("stopped because", summary.stop_reason or _MISSING),
        ("time", format_duration(summary.elapsed_s)),
        ("model", model),
        ("report", summary.report_path or _MISSING),
    ]


def render_summary(summary: RunSummary, console: Console | None = None) -> None:
    """Print the summary as rich tables: the run, the best parameters, the metrics."""
    console = console or Console()
    facts = Table(
        title=Text(f"kubetune · {summary.experiment}", style="bold"),
        title_justify="left",
        show_header=False,
        expand=False,
    )
    facts.add_column(style="bold")
    facts.add_column(overflow="fold")  # a path or URI is wrapped, never cut with "…"
    for label, text in summary_rows(summary):
        # Text() rather than str so that user strings are never read as rich markup.
        facts.add_row(Text(label), Text(text))
    parts: list[Table] = [facts]
    if summary.best_params:
        parts.append(_params_table(summary))
    if summary.validation_metrics or summary.test_metrics:
        parts.append(_metrics_table(summary))
    console.print(Group(*parts))
