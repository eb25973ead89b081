"""A single-file HTML report of a study that opens offline (plotly.js is embedded once)."""

from __future__ import annotations

import contextlib
import html
import logging
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.importance import BaseImportanceEvaluator, FanovaImportanceEvaluator
from optuna.search_space import intersection_search_space
from optuna.trial import FrozenTrial, TrialState

from kubetune.core.attrs import CURVE_PREDICTION, FAILURE, MESSAGE
from kubetune.storage import atomic_write_text

from .summary import RunSummary, format_duration, format_number, summary_rows

__all__ = ["write_html_report"]

_log = logging.getLogger(__name__)

# fANOVA's cost grows faster than linearly with the number of trials (about 1.5 s for 100
# trials, minutes for 2000 on two cores), so importances are computed on a seeded sample.
DEFAULT_MAX_IMPORTANCE_TRIALS = 100
_IMPORTANCE_TREES = 32
_MAX_MESSAGE_CHARS = 4000

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1200px; padding: 0 1rem; color: #222; }
h1 { margin-bottom: 0.2rem; }
.generated { color: #777; font-size: 0.85rem; margin-top: 0; }
section { margin: 2rem 0; }
table { border-collapse: collapse; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3rem 0.6rem; text-align: left;
         vertical-align: top; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #555; background: #f7f7f7; border-left: 3px solid #bbb; padding: 0.5rem 1rem; }
.params { margin: 0; padding: 0; list-style: none; }
.reason { white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: 0.8rem;
          max-width: 40rem; }
tr.best { background: #eef8ee; }
.state-failed { color: #b00020; }
.state-pruned { color: #8a6d00; }
.state-completed { color: #1b6e20; }
.side { display: flex; gap: 2rem; flex-wrap: wrap; align-items: flex-start; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


@contextlib.contextmanager
def _optuna_quiet() -> Iterator[None]:
    """Silence optuna's info/warning chatter about empty or throwaway studies."""
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


class _Figures:
    """Turns plotly figures into HTML fragments; only the first one carries plotly.js."""

    def __init__(self) -> None:
        self._bundle_written = False

    def to_html(self, figure: Any) -> str:
        fragment: str = figure.to_html(
            full_html=False,
            include_plotlyjs=not self._bundle_written,  # True embeds the bundle inline
            default_height="480px",
            config={"displaylogo": False},
        )
        self._bundle_written = True
        return fragment


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _section(anchor: str, heading: str, body: str) -> str:
    return f'<section id="{anchor}">\n<h2>{_e(heading)}</h2>\n{body}\n</section>'


def _plot(figures: _Figures, make: Callable[[], Any], what: str) -> str:
    # A report is written after hours of tuning; one plot that optuna or plotly cannot draw
    # must cost that plot, not the report.
    try:
        with _optuna_quiet():
            figure = make()
        return figures.to_html(figure)
    except Exception as exc:
        # One line for the user (the report says the same); the traceback only at debug level.
        _log.warning("could not draw the %s plot: %s", what, exc)
        _log.debug("the %s plot failed", what, exc_info=True)
        return _note(f"The {what} plot could not be drawn: {type(exc).__name__}: {exc}")


def _importance_study(
    study: optuna.Study, completed: list[FrozenTrial], max_trials: int, seed: int
) -> optuna.Study:
    """``study`` itself, or an in-memory copy holding a seeded sample of its completed trials."""
    if len(completed) <= max_trials:
        return study
    sample = random.Random(seed).sample(completed, max_trials)  # noqa: S311 (plot sample)
    sample.sort(key=lambda t: t.number)
    with _optuna_quiet():
        copy = optuna.create_study(directions=study.directions)
        copy.add_trials(sample)
    return copy


def _importance_section(
    figures: _Figures,
    study: optuna.Study,
    completed: list[FrozenTrial],
    *,
    metric: str,
    evaluator: BaseImportanceEvaluator | None,
    max_trials: int,
    seed: int,
) -> str:
    if len(completed) < 2:
        return _note("Parameter importances need at least 2 completed trials.")
    # Importance is computed over the parameters every completed trial has (conditional
    # parameters of an architecture search drop out) and that actually vary.
    varying = [n for n, d in intersection_search_space(completed).items() if not d.single()]
    if len(varying) < 2:
        return _note(
            "Parameter importances need at least 2 parameters that vary across all "
            f"completed trials; this study has {len(varying)}."
        )
    target_study = _importance_study(study, completed, max_trials, seed)
    if evaluator is None:
        evaluator = FanovaImportanceEvaluator(n_trees=_IMPORTANCE_TREES, seed=seed)
    body = _plot(
        figures,
        lambda: optuna.visualization.plot_param_importances(
            target_study, evaluator=evaluator, target_name=metric
        ),
        "parameter importance",
    )
    if target_study is not study:
        body = (
            _note(
                f"Computed on a random sample of {max_trials} of {len(completed)} completed trials."
            )
            + body
        )
    return body


def _summary_html(summary: RunSummary) -> str:
    facts = "\n".join(
        f"<tr><th>{_e(label)}</th><td>{_e(text)}</td></tr>" for label, text in summary_rows(summary)
    )
    parts = [f'<table class="summary">\n{facts}\n</table>']
    if summary.best_params:
        rows = "\n".join(
            f"<tr><td>{_e(name)}</td><td class='num'>{_e(_param_text(value))}</td></tr>"
            for name, value in summary.best_params.items()
        )
        parts.append(f"<table><tr><th>best parameter</th><th>value</th></tr>\n{rows}\n</table>")
    names = list(summary.validation_metrics)
    names += [n for n in summary.test_metrics if n not in summary.validation_metrics]
    if names:
        rows = "\n".join(
            f"<tr><td>{_e(n)}</td>"
            f"<td class='num'>{_e(format_number(summary.validation_metrics.get(n), 6))}</td>"
            f"<td class='num'>{_e(format_number(summary.test_metrics.get(n), 6))}</td></tr>"
            for n in names
        )
        parts.append(
            f"<table><tr><th>metric</th><th>validation</th><th>test</th></tr>\n{rows}\n</table>"
        )
    return '<div class="side">\n' + "\n".join(parts) + "\n</div>"


def _param_text(value: Any) -> str:
    return format_number(value, 6) if isinstance(value, float) else str(value)


def _state_word(state: TrialState) -> str:
    return {
        TrialState.COMPLETE: "completed",
        TrialState.PRUNED: "pruned",
        TrialState.FAIL: "failed",
    }.get(state, state.name.lower())


def _trial_value(trial: FrozenTrial) -> str:
    if trial.state == TrialState.COMPLETE and trial.values is not None:
        return ", ".join(format_number(v, 6) for v in trial.values)
    step = trial.last_step
    if step is not None:  # pruned/failed: the last reported value says how far it got
        value = trial.intermediate_values[step]
        return f"({format_number(value, 6)} @ step {step})"
    return "—"


def _trial_reason(trial: FrozenTrial) -> str:
    failure = trial.user_attrs.get(FAILURE)
    message = trial.user_attrs.get(MESSAGE)
    text = ": ".join(str(p).strip() for p in (failure, message) if p)
    curve = trial.user_attrs.get(CURVE_PREDICTION)
    if not text and trial.state == TrialState.PRUNED and isinstance(curve, dict):
        text = curve_reason(curve)
    if len(text) > _MAX_MESSAGE_CHARS:
        text = text[:_MAX_MESSAGE_CHARS] + "…"
    return text


def curve_reason(record: dict[str, Any]) -> str:
    """The curve scheduler's prediction, in words (see ``kubetune.core.curve_pruner``)."""
    try:
        return (
            f"curve: predicted {format_number(record['predicted'], 4)}"
            f" ± {format_number(record['std'], 4)} at step {record['at']}"
            f" (from step {record['step']}); P(beats {format_number(record['reference'], 4)})"
            f" = {format_number(record['p_better'], 3)}"
        )
    except KeyError:
        return ""


def _trials_table(trials: list[FrozenTrial], best_number: int | None, metric: str) -> str:
    if not trials:
        return _note("The study has no trials yet.")
    rows = []
    for trial in sorted(trials, key=lambda t: t.number):
        state = _state_word(trial.state)
        params = "".join(
            f"<li>{_e(name)} = {_e(_param_text(value))}</li>"
            for name, value in trial.params.items()
        )
        duration = trial.duration.total_seconds() if trial.duration is not None else None
        css = ' class="best"' if trial.number == best_number else ""
        rows.append(
            f"<tr{css}><td class='num'>{trial.number}</td>"
            f"<td class='state-{state}'>{state}</td>"
            f"<td class='num'>{_e(_trial_value(trial))}</td>"
            f"<td><ul class='params'>{params}</ul></td>"
            f"<td class='num'>{_e(format_duration(duration))}</td>"
            f"<td class='reason'>{_e(_trial_reason(trial))}</td></tr>"
        )
    header = (
        f"<tr><th>#</th><th>state</th><th>{_e(metric)}</th><th>params</th>"
        "<th>duration</th><th>failure reason</th></tr>"
    )
    return '<table class="trials">\n' + header + "\n" + "\n".join(rows) + "\n</table>"


def _best_number(study: optuna.Study) -> int | None:
    if len(study.directions) != 1:
        return None
    try:
        return study.best_trial.number
    except ValueError:  # no completed trial
        return None


def write_html_report(
    study: optuna.Study,
    path: Path,
    *,
    title: str,
    metric: str,
    summary: RunSummary | None = None,
    importance_evaluator: BaseImportanceEvaluator | None = None,
    max_importance_trials: int = DEFAULT_MAX_IMPORTANCE_TRIALS,
    seed: int = 0,
) -> Path:
    """Write one self-contained HTML report of ``study`` to ``path`` and return the path.

    Sections: the run summary (if given), optimization history, parameter importances,
    parallel coordinates, intermediate values (only when some trial reported any) and a
    table of every trial. Plots that cannot be drawn (too few trials, a single parameter)
    are replaced by a short note. ``importance_evaluator`` defaults to fANOVA seeded with
    ``seed``, run on at most ``max_importance_trials`` completed trials.
    """
    path = Path(path)
    trials = study.get_trials(deepcopy=False)
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    figures = _Figures()
    sections: list[str] = []

    if summary is not None:
        sections.append(_section("summary", "Summary", _summary_html(summary)))

    multi_objective = len(study.directions) > 1
    if multi_objective:
        # The plots below rank trials by one value; a multi-objective study needs a target.
        sections.append(
            _section("plots", "Plots", _note("Plots are not drawn for multi-objective studies."))
        )
    else:
        if completed:
            history = _plot(
                figures,
                lambda: optuna.visualization.plot_optimization_history(study, target_name=metric),
                "optimization history",
            )
        else:
            history = _note("No trial has completed yet, so there is no history to plot.")
        sections.append(_section("history", "Optimization history", history))

        importances = _importance_section(
            figures,
            study,
            completed,
            metric=metric,
            evaluator=importance_evaluator,
            max_trials=max_importance_trials,
            seed=seed,
        )
        sections.append(_section("importances", "Parameter importances", importances))

        if len(completed) >= 2:
            parallel = _plot(
                figures,
                lambda: optuna.visualization.plot_parallel_coordinate(study, target_name=metric),
                "parallel coordinate",
            )
        else:
            parallel = _note("Parallel coordinates need at least 2 completed trials.")
        sections.append(_section("parallel", "Parallel coordinates", parallel))

        if any(t.intermediate_values for t in trials):
            curves = _plot(
                figures,
                lambda: optuna.visualization.plot_intermediate_values(study),
                "intermediate values",
            )
            sections.append(_section("curves", "Intermediate values (learning curves)", curves))

    sections.append(
        _section(
            "trials", f"Trials ({len(trials)})", _trials_table(trials, _best_number(study), metric)
        )
    )

    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    document = "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_e(title)}</title>",
            f"<style>{_CSS}</style>",
            "</head>",
            "<body>",
            f"<h1>{_e(title)}</h1>",
            f'<p class="generated">study {_e(study.study_name)} · {_e(metric)} · '
            f"generated {generated}</p>",
            *sections,
            "</body>",
            "</html>",
            "",
        ]
    )
    # A reader (or a browser auto-refreshing) never sees half a report.
    atomic_write_text(path, document)
    return path
