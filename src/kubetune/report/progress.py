"""Loop observers that show a person how the search is going."""

from __future__ import annotations

import time

from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from kubetune.core.attrs import FAILURE, MESSAGE
from kubetune.core.events import LoopObserver, LoopProgress

from .summary import format_duration, format_number

__all__ = ["CompositeObserver", "QuietObserver", "RichProgressObserver", "failure_reason"]

_STATE_WORDS = {
    TrialState.COMPLETE: "completed",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
}
_MAX_REASON_CHARS = 200


def failure_reason(trial: FrozenTrial, max_chars: int | None = None) -> str:
    """``"<failure>: <message>"`` from the trial's user attrs, or ``""`` when it has neither.

    With ``max_chars`` the message is reduced to one line: the last non-empty one, because
    that is where a Python traceback names the exception.
    """
    failure = trial.user_attrs.get(FAILURE)
    message = trial.user_attrs.get(MESSAGE)
    message = "" if message is None else str(message).strip()
    if max_chars is not None and message:
        lines = [line.strip() for line in message.splitlines() if line.strip()]
        message = lines[-1] if lines else ""
        if len(message) > max_chars:
            message = message[: max_chars - 1] + "…"
    if failure and message.startswith(f"{failure}:"):
        return message  # the message already starts with its kind ("cancelled: timeout...")
    parts = [str(p) for p in (failure, message) if p]
    return ": ".join(parts)


def _counts(progress: LoopProgress) -> str:
    again = f", {progress.requeued} to run again" if progress.requeued else ""
    return (
        f"{progress.finished} done: {progress.completed} ok, "
        f"{progress.pruned} pruned, {progress.failed} failed{again}"
    )


class QuietObserver:
    """Shows nothing (``--quiet``, library use)."""

    def on_start(self, progress: LoopProgress) -> None:
        pass

    def on_trial_finished(self, trial: FrozenTrial, progress: LoopProgress) -> None:
        pass

    def on_stop(self, reason: str, progress: LoopProgress) -> None:
        pass


class CompositeObserver:
    """Forwards every event to several observers, in order.

    One observer raising does not keep the event from the others; the first error is
    re-raised once all were called.
    """

    def __init__(self, *observers: LoopObserver) -> None:
        self.observers: tuple[LoopObserver, ...] = observers

    def _each(self, call: str, *args: object) -> None:
        error: BaseException | None = None
        for observer in self.observers:
            try:
                getattr(observer, call)(*args)
            except Exception as exc:
                error = error or exc
        if error is not None:
            raise error

    def on_start(self, progress: LoopProgress) -> None:
        self._each("on_start", progress)

    def on_trial_finished(self, trial: FrozenTrial, progress: LoopProgress) -> None:
        self._each("on_trial_finished", trial, progress)

    def on_stop(self, reason: str, progress: LoopProgress) -> None:
        self._each("on_stop", reason, progress)


class RichProgressObserver:
    """A live progress bar on a terminal; one log line per finished trial elsewhere.

    A live bar written to a file or a CI log is either lost or becomes a stream of control
    codes, so when the console is not interactive each trial gets a plain line instead.
    """

    def __init__(
        self,
        console: Console | None = None,
        metric: str = "value",
        direction: str = "maximize",
        details_at: str | None = None,
    ) -> None:
        """``details_at`` names where a failed trial's full message (its traceback) can be
        read, e.g. the run's report; a one-line reason cannot hold it."""
        if direction not in ("maximize", "minimize"):
            raise ValueError(f"direction must be 'maximize' or 'minimize', not {direction!r}")
        self.console = console or Console()
        self.metric = metric
        self.direction = direction
        self._live = self.console.is_interactive
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._started_at: float | None = None
        self._best: float | None = None
        self._details_at = details_at

    # -- LoopObserver -------------------------------------------------------------------

    def on_start(self, progress: LoopProgress) -> None:
        self._started_at = time.monotonic()
        self._best = progress.best_value
        if not self._live:
            if progress.finished:
                self._print(f"resuming: {_counts(progress)}, best={format_number(self._best)}")
            return
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TextColumn("best [bold]{task.fields[best]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        # total=None gives rich's pulsing bar for loops bounded only by time or patience.
        self._task = self._progress.add_task(
            "tuning",
            total=progress.max_trials,
            completed=progress.finished,
            counts=self._counts_field(progress),
            best=format_number(progress.best_value),
        )
        self._progress.start()

    def on_trial_finished(self, trial: FrozenTrial, progress: LoopProgress) -> None:
        if self._started_at is None:  # tolerate a loop that never sent on_start
            self.on_start(progress)
        improved = self._improves(trial)
        self._best = progress.best_value
        if self._progress is not None and self._task is not None:
            self._refresh(progress)
            # A bar cannot show why a trial failed, so failures still get a line above it.
            if trial.state == TrialState.FAIL:
                self._progress.console.print(
                    Text(self._trial_line(trial, progress, improved)), soft_wrap=True
                )
            return
        self._print(self._trial_line(trial, progress, improved))

    def on_stop(self, reason: str, progress: LoopProgress) -> None:
        if self._progress is not None and self._task is not None:
            total = progress.max_trials if progress.max_trials is not None else progress.finished
            self._progress.update(self._task, total=total)
            self._refresh(progress)
            self._progress.stop()
            self._progress = None
        elapsed = time.monotonic() - self._started_at if self._started_at is not None else None
        self._print(
            f"stopped: {reason} [{_counts(progress)}] "
            f"best {self.metric}={format_number(progress.best_value)} "
            f"in {format_duration(elapsed)}"
        )

    def close(self) -> None:
        """Stop a live bar without a stop line, e.g. when the loop died before ``on_stop``."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    # -- helpers ------------------------------------------------------------------------

    def _print(self, line: str) -> None:
        # Text (not a markup string) so brackets in reasons or params are printed verbatim;
        # soft_wrap so a narrow or file console does not break a log line in two.
        self.console.print(Text(line), soft_wrap=True, highlight=False)

    @staticmethod
    def _counts_field(progress: LoopProgress) -> str:
        counts = f"ok {progress.completed} · pruned {progress.pruned} · failed {progress.failed}"
        if progress.running:
            counts += f" · running {progress.running}"
        return counts

    def _refresh(self, progress: LoopProgress) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(
                self._task,
                completed=progress.finished,
                counts=self._counts_field(progress),
                best=format_number(progress.best_value),
            )

    def _improves(self, trial: FrozenTrial) -> bool:
        if trial.state != TrialState.COMPLETE or trial.value is None:
            return False
        if self._best is None:
            return True
        if self.direction == "maximize":
            return trial.value > self._best
        return trial.value < self._best

    def _trial_line(self, trial: FrozenTrial, progress: LoopProgress, improved: bool) -> str:
        state = _STATE_WORDS.get(trial.state, trial.state.name.lower())
        words = [f"trial {trial.number}", state]
        if trial.state == TrialState.COMPLETE:
            words.append(f"{self.metric}={format_number(trial.value)}")
        elif trial.state == TrialState.PRUNED and trial.intermediate_values:
            step = trial.last_step
            if step is not None:
                value = trial.intermediate_values[step]
                words.append(f"at step {step} ({self.metric}={format_number(value)})")
        elif trial.state == TrialState.FAIL:
            reason = failure_reason(trial, _MAX_REASON_CHARS)
            words.append(f"({reason})" if reason else "(no reason recorded)")
            if self._details_at and len(str(trial.user_attrs.get(MESSAGE, "")).splitlines()) > 1:
                words.append(f"[traceback: {self._details_at}, trial {trial.number}]")
        words.append(f"best={format_number(progress.best_value)}")
        if improved:
            words.append("(new best)")
        words.append(f"[{_counts(progress)}]")
        return " ".join(words)
