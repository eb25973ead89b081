"""The trial artifact store: checkpoints and files a trial saves, on any object store.

A trial (in a local worker, a subprocess or a pod) gets the store's URI in its request::

    from kubetune.artifacts import trial_artifacts

    artifacts = trial_artifacts(request)           # studies/<study>/trials/<number>/
    resume_from = artifacts.load_checkpoint(tmp)   # None: start from scratch
    ...
    artifacts.save_checkpoint(model_dir, step=epoch)

:class:`ObjectArtifactStore` implements optuna's artifact-store protocol on the same
stores, for ``optuna.artifacts.upload_artifact`` / ``download_artifact`` and
optuna-dashboard.
"""

from __future__ import annotations

from kubetune.artifacts.optuna_store import ObjectArtifactStore
from kubetune.artifacts.trial import (
    CHECKPOINT_NAME,
    Checkpoint,
    StepArtifacts,
    TrialArtifacts,
    trial_artifacts,
)

__all__ = [
    "CHECKPOINT_NAME",
    "Checkpoint",
    "ObjectArtifactStore",
    "StepArtifacts",
    "TrialArtifacts",
    "trial_artifacts",
]
