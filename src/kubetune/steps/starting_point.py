"""Where a trial's training starts: from scratch, from a parent's weights, or from its own
checkpoint at a lower budget.

- **continue**: the request's own trial number already saved a checkpoint at a smaller
  budget (a config the looping pipeline promoted to the next rung, kept as one optuna
  trial): the trainer trains on from it for the remaining budget only;
- **inherit**: the request names a ``parent`` (an evolution child, a pbt member) whose
  checkpoint exists: the trainer starts from those weights (``Trainer.fit_from``);
- otherwise (or when the checkpoint cannot be used) from scratch, and the reason is
  logged and kept in the trial's metrics (``resume_skipped``), never failing the trial.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubetune.core.trial import Reporter, TrialRequest
from kubetune.data import Dataset
from kubetune.errors import KubetuneError
from kubetune.trainers import TrainedModel, Trainer
from kubetune.trainers.checkpoints import CheckpointStore, Restored

__all__ = [
    "INHERITED_FROM",
    "RESUMED_FROM_STEP",
    "RESUME_SKIPPED",
    "TRAIN_ROWS",
    "StartingPoint",
    "starting_point",
]

_log = logging.getLogger(__name__)

# Metric of a trial that started from another trial's weights: that trial's number.
INHERITED_FROM = "inherited_from"
# Metric of a trial that went on from its own checkpoint: the budget that checkpoint had.
RESUMED_FROM_STEP = "resumed_from_step"
# Metric of a trial that had a checkpoint of its own but trained from scratch: 1.0 (the
# reason is in the log: metrics hold numbers only).
RESUME_SKIPPED = "resume_skipped"
# Metric of a data-fraction trial: training rows summed over its fits (what it cost).
TRAIN_ROWS = "train_rows"


@dataclass(frozen=True)
class StartingPoint:
    """How one trial trains: ``checkpoint`` is None for a cold start."""

    checkpoint: Restored | None = None
    inherited_from: int | None = None  # a parent's number (else: its own checkpoint)
    skipped: str | None = None  # why an own checkpoint was not used

    def fit(
        self,
        trainer: Trainer,
        params: dict[str, Any],
        data: Dataset,
        *,
        budget: int | None,
        seed: int,
        reporter: Reporter,
        metric: str,
    ) -> TrainedModel:
        common: dict[str, Any] = {"seed": seed, "reporter": reporter, "metric": metric}
        if self.checkpoint is None:
            return trainer.fit(params, data, budget=budget, **common)
        if self.inherited_from is not None:
            return trainer.fit_from(self.checkpoint.path, params, data, budget=budget, **common)
        if budget is None or self.checkpoint.step is None:
            raise ValueError("continuing a checkpoint needs its budget and the new one")
        return trainer.continue_fit(
            self.checkpoint.path, self.checkpoint.step, params, data, budget=budget, **common
        )

    def metrics(self) -> dict[str, float]:
        """What the trial's record says about where it started."""
        if self.skipped is not None:
            return {RESUME_SKIPPED: 1.0}
        if self.checkpoint is None:
            return {}
        if self.inherited_from is not None:
            return {INHERITED_FROM: float(self.inherited_from)}
        return {RESUMED_FROM_STEP: float(self.checkpoint.step or 0)}


def starting_point(
    store: CheckpointStore | None,
    trainer: Trainer,
    request: TrialRequest,
    scratch: Path,
    *,
    continue_own: bool = False,
) -> StartingPoint:
    """Decide (and fetch into ``scratch``, a folder that lives while the trial trains) the
    checkpoint ``request`` starts from. ``continue_own``: the trial number may have saved
    a checkpoint at a lower budget that it goes on from (only the looping pipeline's
    rounds rerun a trial number; elsewhere a leftover of that number is never used)."""
    if store is None:
        return StartingPoint()
    own = _load(store, request.number, scratch / "own", request) if continue_own else None
    skipped = None
    if own is not None:
        skipped = _cannot_continue(trainer, own, request)
        if skipped is None:
            return StartingPoint(own)
        _log.warning("trial %d does not continue its checkpoint: %s", request.number, skipped)
    if request.parent is not None and trainer.can_resume:
        parent = _load(store, request.parent, scratch / "parent", request)
        if parent is not None:
            return StartingPoint(parent, inherited_from=request.parent)
        _log.warning(
            "trial %d: parent trial %d left no checkpoint; training from scratch",
            request.number,
            request.parent,
        )
    return StartingPoint(skipped=skipped)


def _load(
    store: CheckpointStore, number: int, dest: Path, request: TrialRequest
) -> Restored | None:
    try:
        return store.load(number, dest)
    except KubetuneError as exc:  # a corrupt or unreachable checkpoint costs a cold start only
        _log.warning(
            "trial %d: cannot load the checkpoint of trial %d: %s", request.number, number, exc
        )
        return None


def _cannot_continue(trainer: Trainer, own: Restored, request: TrialRequest) -> str | None:
    """Why the trial's own checkpoint cannot be trained on (None: it can)."""
    if not trainer.can_continue:
        return f"the {trainer.kind} trainer cannot continue a saved model"
    if own.step is None or request.budget is None:
        return "the checkpoint or the request has no budget to continue between"
    if own.step >= request.budget:
        return f"the checkpoint already trained {own.step} of a budget of {request.budget}"
    return None
