"""Where a trial's trained weights are kept so later trials can start from them.

One seam, :class:`CheckpointStore`, with two implementations:

- :class:`ArtifactCheckpoints`: the trial artifact store (``kubetune.artifacts``) on any
  object store (a local folder by default, ``s3://...`` in a cluster), so a trial in
  another process or pod finds its parent's weights (evolution's weight inheritance, a
  pbt member copying a better one, a promoted config resuming at a higher rung);
- :class:`LocalCheckpoints`: a folder per trial number under the request's
  ``output_dir``, for a request that names no artifact store.

:func:`checkpoints_for` is the one place that picks the store for a request.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from kubetune.artifacts import TrialArtifacts, trial_artifacts
from kubetune.core.trial import TrialRequest
from kubetune.trainers.base import TrainedModel

__all__ = [
    "ArtifactCheckpoints",
    "CheckpointStore",
    "LocalCheckpoints",
    "Restored",
    "checkpoints_for",
]


@dataclass(frozen=True)
class Restored:
    """A checkpoint made available locally: the folder of its model files, and the budget
    (epochs, trees, ...) the trial had trained when it saved (None when not recorded)."""

    path: Path
    step: int | None


class CheckpointStore(ABC):
    @abstractmethod
    def save(self, number: int, model: TrainedModel, *, step: int | None = None) -> None:
        """Keep trial ``number``'s model (replacing an earlier one of that number);
        ``step`` is the budget it trained for."""

    @abstractmethod
    def load(self, number: int, dest: Path) -> Restored | None:
        """Trial ``number``'s model files in a local folder (downloaded into ``dest`` when
        the store is remote), or None when that trial saved none."""


class ArtifactCheckpoints(CheckpointStore):
    """Checkpoints in the trial artifact store: ``studies/<study>/trials/<number>/``."""

    def __init__(self, artifacts: TrialArtifacts) -> None:
        self.artifacts = artifacts  # any trial's folder of the study: others via for_trial

    def __repr__(self) -> str:
        return f"ArtifactCheckpoints({self.artifacts.store.uri()!r})"

    def save(self, number: int, model: TrainedModel, *, step: int | None = None) -> None:
        with tempfile.TemporaryDirectory(prefix="kubetune-checkpoint-") as tmp:
            model.save(Path(tmp))
            model.save_training_state(Path(tmp))
            self.artifacts.for_trial(number).save_checkpoint(Path(tmp), step=step)

    def load(self, number: int, dest: Path) -> Restored | None:
        folder = self.artifacts.for_trial(number)
        record = folder.checkpoint()
        if record is None:
            return None
        path = folder.load_checkpoint(Path(dest))
        return None if path is None else Restored(path, record.step)


class LocalCheckpoints(CheckpointStore):
    _STEP = ".kubetune-step.json"  # beside the model's files; model loaders ignore it

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _dir(self, number: int) -> Path:
        return self.root / f"{number:06d}"

    def save(self, number: int, model: TrainedModel, *, step: int | None = None) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        # Written aside and renamed: a reader never sees half a checkpoint.
        staging = Path(tempfile.mkdtemp(prefix=f".{number:06d}-", dir=self.root))
        try:
            model.save(staging)
            model.save_training_state(staging)
            (staging / self._STEP).write_text(json.dumps({"step": step}))
            target = self._dir(number)
            if target.exists():  # a retried trial number: the newer weights win
                shutil.rmtree(target)
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def local_dir(self, number: int) -> Path | None:
        folder = self._dir(number)
        return folder if folder.is_dir() else None

    def load(self, number: int, dest: Path) -> Restored | None:
        folder = self.local_dir(number)
        if folder is None:
            return None
        try:
            step = json.loads((folder / self._STEP).read_text()).get("step")
        except (OSError, ValueError, AttributeError):
            step = None
        return Restored(folder, step if isinstance(step, int) else None)


def checkpoints_for(request: TrialRequest) -> CheckpointStore | None:
    """The store for this run's trials: the request's artifact store when it names one
    (every run does: ``<run folder>/artifacts`` by default), else
    ``<output_dir>/checkpoints``; None with neither."""
    if request.artifacts:
        base = Path(request.spec_dir) if request.spec_dir else None
        return ArtifactCheckpoints(trial_artifacts(request, base_dir=base))
    if request.output_dir is None:
        return None
    return LocalCheckpoints(Path(request.output_dir) / "checkpoints")
