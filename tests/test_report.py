"""The report package: HTML report, progress observers and the run summary (all offline)."""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path

import numpy as np
import optuna
import plotly.offline
import pytest
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState, create_trial
from rich.console import Console

from kubetune.core.attrs import FAILURE, MESSAGE
from kubetune.core.events import LoopProgress
from kubetune.report import (
    CompositeObserver,
    QuietObserver,
    RichProgressObserver,
    RunSummary,
    format_duration,
    render_summary,
    write_html_report,
)

EVIL = "<script>alert(1)</script>"
DISTRIBUTIONS = {
    "lr": FloatDistribution(1e-4, 1e-1, log=True),
    "depth": IntDistribution(1, 8),
    "act": CategoricalDistribution(["relu", "tanh", EVIL]),
}
FAIL_MESSAGE = "Traceback (most recent call last):\n  ...\nValueError: <bad> & [red]worse[/red]"


def _numbered(trial: FrozenTrial, number: int) -> FrozenTrial:
    trial.number = number  # create_trial leaves -1; a study renumbers on add_trial
    return trial


def _completed(i: int, value: float, act: str = "relu") -> FrozenTrial:
    return create_trial(
        params={"lr": 10 ** -(1 + i % 3), "depth": 1 + i % 8, "act": act},
        distributions=DISTRIBUTIONS,
        value=value,
        intermediate_values={0: value / 3, 1: value / 2, 2: value},
    )


def _pruned() -> FrozenTrial:
    return create_trial(
        params={"lr": 0.05, "depth": 2, "act": "tanh"},
        distributions=DISTRIBUTIONS,
        state=TrialState.PRUNED,
        intermediate_values={0: 0.1, 1: 0.12},
    )


def _failed() -> FrozenTrial:
    return create_trial(
        params={"lr": 0.001, "depth": 3, "act": "relu"},
        distributions=DISTRIBUTIONS,
        state=TrialState.FAIL,
        user_attrs={FAILURE: "error", MESSAGE: FAIL_MESSAGE},
    )


def _study(n_completed: int = 6) -> optuna.Study:
    study = optuna.create_study(study_name="demo", direction="maximize")
    for i in range(n_completed):
        study.add_trial(_completed(i, 0.5 + 0.07 * i, act=EVIL if i == 1 else "relu"))
    study.add_trial(_pruned())
    study.add_trial(_failed())
    return study


def _summary() -> RunSummary:
    return RunSummary(
        experiment="demo <exp>",
        metric="accuracy",
        direction="maximize",
        best_params={"lr": 0.001, "depth": 6, "act": "relu"},
        best_value=0.85,
        best_trial_number=5,
        validation_metrics={"accuracy": 0.85, "f1": 0.83125},
        test_metrics={"accuracy": 0.8421, "f1": 0.8177},
        completed=6,
        pruned=1,
        failed=1,
        stop_reason="max_trials reached",
        elapsed_s=3723.0,
        model_uri="file:///models/demo",
        model_version=17,
        report_path="/tmp/report.html",
    )


def _bundle_count(text: str) -> int:
    return text.count(f"plotly.js v{plotly.offline.get_plotlyjs_version()}")


# -- HTML report ------------------------------------------------------------------------


def test_report_has_every_section_plot_and_trial_row(tmp_path: Path) -> None:
    study = _study()
    out = write_html_report(
        study, tmp_path / "r" / "report.html", title="Demo", metric="accuracy", summary=_summary()
    )
    assert out == tmp_path / "r" / "report.html"
    text = out.read_text(encoding="utf-8")

    for heading in (
        "Summary",
        "Optimization history",
        "Parameter importances",
        "Parallel coordinates",
        "Intermediate values (learning curves)",
        "Trials (8)",
    ):
        assert f"<h2>{heading}</h2>" in text
    for plot_title in (
        "Optimization History Plot",
        "Hyperparameter Importances",
        "Parallel Coordinate Plot",
        "Intermediate Values Plot",
    ):
        assert plot_title in text
    assert text.count("Plotly.newPlot") == 4

    trials_table = text.split('<table class="trials">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr[ >].*?</tr>", trials_table, flags=re.DOTALL)
    assert len(rows) == 1 + len(study.trials)  # header + one per trial
    states = [re.search(r"class='state-(\w+)'", row) for row in rows[1:]]
    assert [m.group(1) for m in states if m] == ["completed"] * 6 + ["pruned", "failed"]
    assert "class=\"best\"><td class='num'>5</td>" in trials_table  # best trial highlighted
    assert "(0.12 @ step 1)" in trials_table  # pruned: how far it got
    # The failure reason is shown, escaped, in full.
    assert "error: Traceback" in trials_table
    assert "ValueError: &lt;bad&gt; &amp; [red]worse[/red]" in trials_table

    # Summary: facts and test metrics next to validation ones.
    assert "file:///models/demo (version 17)" in text
    assert "<td>f1</td><td class='num'>0.83125</td><td class='num'>0.8177</td>" in text


def test_report_is_offline_with_exactly_one_plotly_bundle(tmp_path: Path) -> None:
    text = write_html_report(_study(), tmp_path / "r.html", title="t", metric="m").read_text()
    assert _bundle_count(text) == 1
    assert not re.search(r"<script[^>]*\bsrc=", text)  # nothing loaded from the network
    assert "cdn.plot.ly/plotly" not in text


def test_report_escapes_user_strings(tmp_path: Path) -> None:
    summary = _summary()
    summary.best_params["act"] = EVIL
    text = write_html_report(
        _study(), tmp_path / "r.html", title="<b>title</b>", metric="acc<u>", summary=summary
    ).read_text()
    assert EVIL not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text  # the trial table and summary
    assert "<b>title</b>" not in text and "&lt;b&gt;title&lt;/b&gt;" in text
    assert "acc<u>" not in text
    assert "demo <exp>" not in text and "demo &lt;exp&gt;" in text


@pytest.mark.parametrize("n_completed", [0, 1])
def test_report_with_too_few_completed_trials_has_notes(tmp_path: Path, n_completed: int) -> None:
    text = write_html_report(
        _study(n_completed), tmp_path / "r.html", title="t", metric="m"
    ).read_text()
    assert "Parameter importances need at least 2 completed trials." in text
    assert "Parallel coordinates need at least 2 completed trials." in text
    assert f"<h2>Trials ({n_completed + 2})</h2>" in text
    if n_completed == 0:
        assert "No trial has completed yet" in text
    else:
        assert "Optimization History Plot" in text
    # Only the pruned trial's curve (and the completed one's) is left to plot; one bundle.
    assert _bundle_count(text) == 1


def test_report_of_an_empty_study(tmp_path: Path) -> None:
    study = optuna.create_study()
    text = write_html_report(study, tmp_path / "r.html", title="t", metric="m").read_text()
    assert "The study has no trials yet." in text
    assert "Intermediate values" not in text  # no trial reported any
    assert _bundle_count(text) == 0  # no figure, so no reason to carry 4 MB of JS


def test_importances_with_a_single_parameter_show_a_note(tmp_path: Path) -> None:
    study = optuna.create_study()
    for i in range(4):
        study.add_trial(
            create_trial(
                params={"x": i / 4}, distributions={"x": FloatDistribution(0, 1)}, value=float(i)
            )
        )
    text = write_html_report(study, tmp_path / "r.html", title="t", metric="m").read_text()
    assert "need at least 2 parameters that vary" in text
    assert "Hyperparameter Importances" not in text
    assert "Parallel Coordinate Plot" in text


def test_importances_are_computed_on_a_bounded_sample(tmp_path: Path) -> None:
    text = write_html_report(
        _study(12), tmp_path / "r.html", title="t", metric="m", max_importance_trials=5
    ).read_text()
    assert "random sample of 5 of 12 completed trials" in text
    assert "Hyperparameter Importances" in text


def test_report_replaces_an_old_one_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    target.write_text("old")
    write_html_report(_study(2), target, title="new one", metric="m")
    assert "new one" in target.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]  # no temp left over


def test_failed_report_write_keeps_the_old_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "report.html"
    target.write_text("old")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("kubetune.storage.atomic.os.replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_html_report(_study(0), target, title="t", metric="m")
    assert target.read_text() == "old"  # readers never see a half-written report
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


# -- progress observers -----------------------------------------------------------------


def _progress(completed: int, pruned: int, failed: int, best: float | None) -> LoopProgress:
    return LoopProgress(
        completed=completed, pruned=pruned, failed=failed, running=1, best_value=best, max_trials=4
    )


def _plain_console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=False, width=60), buffer


def test_plain_progress_prints_one_line_per_trial_with_failure_reasons() -> None:
    console, buffer = _plain_console()
    observer = RichProgressObserver(console, metric="accuracy", direction="maximize")
    observer.on_start(_progress(0, 0, 0, None))
    trials = [_completed(0, 0.97341), _completed(1, 0.9), _pruned(), _failed()]
    trials = [_numbered(t, n) for n, t in enumerate(trials, start=10)]
    observer.on_trial_finished(trials[0], _progress(1, 0, 0, 0.97341))
    observer.on_trial_finished(trials[1], _progress(2, 0, 0, 0.97341))
    observer.on_trial_finished(trials[2], _progress(2, 1, 0, 0.97341))
    observer.on_trial_finished(trials[3], _progress(2, 1, 1, 0.97341))
    observer.on_stop("max_trials reached", _progress(2, 1, 1, 0.97341))

    lines = buffer.getvalue().splitlines()
    assert lines[:4] == [
        "trial 10 completed accuracy=0.9734 best=0.9734 (new best) "
        "[1 done: 1 ok, 0 pruned, 0 failed]",
        "trial 11 completed accuracy=0.9 best=0.9734 [2 done: 2 ok, 0 pruned, 0 failed]",
        "trial 12 pruned at step 1 (accuracy=0.12) best=0.9734 [3 done: 2 ok, 1 pruned, 0 failed]",
        # The last traceback line, verbatim: brackets are not read as rich markup.
        "trial 13 failed (error: ValueError: <bad> & [red]worse[/red]) best=0.9734 "
        "[4 done: 2 ok, 1 pruned, 1 failed]",
    ]
    assert lines[4].startswith("stopped: max_trials reached [4 done: 2 ok, 1 pruned, 1 failed]")
    assert "best accuracy=0.9734 in " in lines[4]
    assert len(lines) == 5
    assert "\x1b[" not in buffer.getvalue()  # no control codes in a log


def test_plain_progress_minimize_and_missing_reason() -> None:
    console, buffer = _plain_console()
    observer = RichProgressObserver(console, direction="minimize")
    observer.on_start(_progress(3, 0, 0, 0.2))  # a resumed study
    observer.on_trial_finished(_completed(3, 0.1), _progress(4, 0, 0, 0.1))
    observer.on_trial_finished(create_trial(state=TrialState.FAIL), _progress(4, 0, 1, 0.1))
    lines = buffer.getvalue().splitlines()
    assert lines[0] == "resuming: 3 done: 3 ok, 0 pruned, 0 failed, best=0.2"
    assert "value=0.1 best=0.1 (new best)" in lines[1]
    assert "failed (no reason recorded)" in lines[2]


def test_live_progress_bar_on_a_terminal() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, force_interactive=True, width=160)
    observer = RichProgressObserver(console)
    observer.on_start(_progress(0, 0, 0, None))
    observer.on_trial_finished(_completed(0, 0.5), _progress(1, 0, 0, 0.5))
    observer.on_trial_finished(_failed(), _progress(1, 0, 1, 0.5))
    observer.on_stop("no improvement for 5 trials", _progress(1, 0, 1, 0.5))
    out = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buffer.getvalue())  # drop colours
    assert "2/4" in out  # the bar's trials-done column
    assert "ok 1 · pruned 0 · failed 1" in out
    assert "best 0.5" in out
    assert "ValueError: <bad>" in out  # failures still get a line above the bar
    assert "stopped: no improvement for 5 trials" in out


def test_live_progress_without_trial_limit_is_indeterminate() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, force_interactive=True, width=160)
    observer = RichProgressObserver(console)
    unbounded = LoopProgress(0, 0, 0, 0, None, None)
    observer.on_start(unbounded)
    assert observer._progress is not None
    assert observer._progress.tasks[0].total is None
    observer.on_stop("wall time", LoopProgress(3, 0, 0, 0, 1.0, None))
    assert "3/3" in buffer.getvalue()  # the finished bar is full
    assert observer._progress is None


def test_composite_forwards_to_all_and_reraises_first_error() -> None:
    console, buffer = _plain_console()

    class Broken(QuietObserver):
        def __init__(self, which: str) -> None:
            self.which = which

        def on_trial_finished(self, trial: FrozenTrial, progress: LoopProgress) -> None:
            raise RuntimeError(f"{self.which} broken observer")

    # two broken observers, so that re-raising the first error is told from the last one
    composite = CompositeObserver(
        QuietObserver(), Broken("first"), RichProgressObserver(console), Broken("second")
    )
    composite.on_start(_progress(0, 0, 0, None))
    with pytest.raises(RuntimeError, match=r"^first broken observer$"):
        composite.on_trial_finished(_numbered(_completed(0, 0.5), 0), _progress(1, 0, 0, 0.5))
    composite.on_stop("done", _progress(1, 0, 0, 0.5))
    out = buffer.getvalue()
    assert "trial 0 completed value=0.5" in out  # the observer after the broken one ran
    assert "stopped: done" in out


def test_rejects_unknown_direction() -> None:
    with pytest.raises(ValueError, match="direction"):
        RichProgressObserver(Console(file=io.StringIO()), direction="up")


# -- summary ----------------------------------------------------------------------------


def test_render_summary_shows_params_metrics_and_locations() -> None:
    buffer = io.StringIO()
    render_summary(_summary(), Console(file=buffer, force_terminal=False, width=120))
    out = buffer.getvalue()
    for expected in (
        "demo <exp>",
        "maximize accuracy",
        "0.85 (trial 5)",
        "8 finished: 6 completed, 1 pruned, 1 failed",
        "max_trials reached",
        "1h 02m 03s",
        "file:///models/demo (version 17)",
        "/tmp/report.html",
    ):
        assert expected in out
    # Best params and the validation/test columns side by side.
    assert re.search(r"lr\s*│\s*0\.001", out)
    assert re.search(r"depth\s*│\s*6", out)
    assert re.search(r"f1\s*│\s*0\.83125\s*│\s*0\.8177", out)
    assert re.search(r"accuracy\s*│\s*0\.85\s*│\s*0\.8421", out)


def test_summary_to_dict_is_json_safe_and_round_trips() -> None:
    summary = _summary()
    summary.best_params["units"] = np.int64(64)
    summary.best_params["layers"] = (32, np.float32(0.5))
    summary.test_metrics["loss"] = math.nan
    data = summary.to_dict()
    text = json.dumps(data, allow_nan=False)
    loaded = json.loads(text)
    assert loaded["best_params"]["units"] == 64
    assert loaded["best_params"]["layers"] == [32, 0.5]
    assert loaded["test_metrics"]["loss"] is None
    assert RunSummary.from_dict({**loaded, "added_later": 1}).model_version == 17


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "—"), (0.25, "0.2s"), (59.94, "59.9s"), (61, "1m 01s"), (7322, "2h 02m 02s")],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_requeued_attempts_are_not_failures_and_kinds_are_not_doubled() -> None:
    """Issue 7.18: cancelled and retried attempts inflated the failed count, and the
    reason read "cancelled: cancelled: timeout reached"."""
    from kubetune.core.events import LoopProgress
    from kubetune.report.progress import _counts, failure_reason

    progress = LoopProgress(
        completed=2, pruned=0, failed=1, running=0, best_value=0.5, max_trials=6, requeued=4
    )
    assert _counts(progress) == "3 done: 2 ok, 0 pruned, 1 failed, 4 to run again"
    trial = optuna.trial.create_trial(
        state=optuna.trial.TrialState.FAIL,
        user_attrs={"failure": "cancelled", "message": "cancelled: timeout reached (60s)"},
    )
    assert failure_reason(trial) == "cancelled: timeout reached (60s)"


def test_a_failed_trial_line_points_to_its_traceback() -> None:
    """Issue 7.18: a one-line reason cannot hold a traceback; say where it is."""
    from kubetune.core.events import LoopProgress

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=200)
    observer = RichProgressObserver(console, details_at="kubetune-runs/x/report.html")
    progress = LoopProgress(
        completed=0, pruned=0, failed=1, running=0, best_value=None, max_trials=3
    )
    crashed = optuna.trial.create_trial(
        state=optuna.trial.TrialState.FAIL,
        user_attrs={"failure": "error", "message": "ValueError: bad\nTraceback ...\n  line"},
    )
    one_line = optuna.trial.create_trial(
        state=optuna.trial.TrialState.FAIL,
        user_attrs={"failure": "not_finite", "message": "objective 'value' is nan"},
    )
    observer.on_trial_finished(crashed, progress)
    observer.on_trial_finished(one_line, progress)
    first, second = [line for line in buffer.getvalue().splitlines() if " failed (" in line]
    assert f"[traceback: kubetune-runs/x/report.html, trial {crashed.number}]" in first
    assert "traceback" not in second  # nothing more to read than the line says


def test_summary_table_keeps_long_paths_whole_and_labels_its_columns() -> None:
    """Issue 7.18: piped output cut the report path with "…"; the metric columns came
    from two models without saying so."""
    summary = _summary()
    summary.report_path = "/very/long/" + "folder/" * 20 + "report.html"
    buffer = io.StringIO()
    render_summary(summary, Console(file=buffer, force_terminal=False, width=80))
    text = buffer.getvalue()
    assert "…" not in text
    flat = "".join(line.strip(" │|") for line in text.splitlines())
    assert "report.html" in flat and "folder/folder/" in flat
    assert "validation (best trial)" in text and "test (final model)" in text
