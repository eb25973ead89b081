"""Where a trial's trained weights are kept so later trials can start from them.

One seam, :class:`CheckpointStore`: a local folder per trial number today
(:class:`LocalCheckpoints`, under the run's trial folder). Trials in pods need a shared
store; the trial artifact store (optuna's ArtifactStore over kubetune's object store, being
built on another branch) can implement the same two methods, and
:func:`checkpoints_for` is the one place that picks the store.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path

from kubetune.core.trial import TrialRequest
from kubetune.trainers.base import TrainedModel

__all__ = ["CheckpointStore", "LocalCheckpoints", "checkpoints_for"]


class CheckpointStore(ABC):
    @abstractmethod
    def save(self, number: int, model: TrainedModel) -> None:
        """Keep trial ``number``'s model (replacing an earlier one of that number)."""

    @abstractmethod
    def local_dir(self, number: int) -> Path | None:
        """A local folder holding trial ``number``'s model files, or None if there is none."""


class LocalCheckpoints(CheckpointStore):
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _dir(self, number: int) -> Path:
        return self.root / f"{number:06d}"

    def save(self, number: int, model: TrainedModel) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        # Written aside and renamed: a reader never sees half a checkpoint.
        staging = Path(tempfile.mkdtemp(prefix=f".{number:06d}-", dir=self.root))
        try:
            model.save(staging)
            target = self._dir(number)
            if target.exists():  # a retried trial number: the newer weights win
                shutil.rmtree(target)
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def local_dir(self, number: int) -> Path | None:
        folder = self._dir(number)
        return folder if folder.is_dir() else None


def checkpoints_for(request: TrialRequest) -> CheckpointStore | None:
    """The store for this run's trials: ``<output_dir>/checkpoints`` (None without one)."""
    if request.output_dir is None:
        return None
    return LocalCheckpoints(Path(request.output_dir) / "checkpoints")
