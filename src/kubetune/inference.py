"""Load a stored model version and predict on raw rows.

    model = kubetune.load_model("pulled-dir")                      # from `kubetune models pull`
    model = kubetune.load_model("iris:production", repo="model-repo")
    model.predict(df)        # original labels (or values), columns found by name

A version holds the model files and ``preprocessing.json`` (the fitted feature encoder), so
raw rows -> features -> predictions needs nothing from the run that trained it.
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kubetune.data.preprocessing import PREPROCESSING_FILE, FeatureEncoder
from kubetune.errors import DataError, KubetuneError, RepositoryError
from kubetune.trainers import TrainedModel, get_trainer

__all__ = ["LoadedModel", "load_model", "load_model_dir", "parse_model_ref"]

# Files that name the trainer kind of a model directory without a manifest.
_KIND_FILES = ("model.json", "architecture.json")


def _load_errors() -> tuple[type[BaseException], ...]:
    """What a corrupt or foreign model file raises while loading, besides our own errors."""
    errors: list[type[BaseException]] = [
        KubetuneError,
        OSError,
        ValueError,
        RuntimeError,
        KeyError,
        TypeError,
        zipfile.BadZipFile,
    ]
    try:
        from safetensors import SafetensorError

        errors.append(SafetensorError)
    except ImportError:  # torch extras not installed
        pass
    return tuple(errors)


@dataclass
class LoadedModel:
    """A stored model plus its feature encoder: predicts on a DataFrame of raw rows."""

    model: TrainedModel
    encoder: FeatureEncoder | None  # None: pushed before kubetune stored preprocessing
    trainer: str
    source: str
    version: int | None = None

    @property
    def task(self) -> str | None:
        return self.encoder.target.task if self.encoder and self.encoder.target else None

    @property
    def classes(self) -> tuple[Any, ...]:
        """The original class labels, in the order of ``predict_proba``'s columns."""
        return self.encoder.target.labels if self.encoder and self.encoder.target else ()

    @property
    def input_columns(self) -> tuple[str, ...]:
        return self.encoder.input_columns if self.encoder else ()

    def features(self, frame: pd.DataFrame) -> np.ndarray:
        """Raw rows -> the model's feature matrix (columns by name, extra ones ignored)."""
        if self.encoder is None:
            raise DataError(
                f"{self.source} was stored without its feature layout ({PREPROCESSING_FILE});"
                " it cannot predict on raw rows: push it again with this kubetune"
            )
        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"predict takes a pandas DataFrame of raw rows, got {type(frame)}")
        return self.encoder.transform(frame)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Class labels as in the training data (or regression values)."""
        pred = np.asarray(self.model.predict(self.features(frame)))
        if not self.classes:
            return pred
        labels = _label_array(self.classes)
        return labels[pred.astype(np.int64)]

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray | None:
        """Probabilities, one column per label of :attr:`classes`; None for regressors."""
        proba = self.model.predict_proba(self.features(frame))
        return None if proba is None else np.asarray(proba)


def _label_array(labels: tuple[Any, ...]) -> np.ndarray:
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in labels):
        return np.asarray(labels)
    return np.asarray([str(v) for v in labels], dtype=object)


def parse_model_ref(ref: str) -> tuple[str, int | str]:
    """``NAME[:REF]`` -> (name, version number or alias); REF defaults to ``latest``."""
    name, _, version = ref.partition(":")
    if not name:
        raise RepositoryError(f"expected NAME[:REF] (e.g. iris:production), got {ref!r}")
    version = version or "latest"
    return name, int(version) if version.isdigit() else version


def _trainer_kind(directory: Path) -> tuple[str, int | None]:
    """From the pulled manifest, else from the model files themselves."""
    from kubetune.repository.manifest import MANIFEST_NAME, Manifest

    manifest = directory / MANIFEST_NAME
    if manifest.is_file():
        parsed = Manifest.from_json(manifest.read_bytes(), source=str(manifest))
        return parsed.trainer, parsed.version
    for name in _KIND_FILES:
        path = directory / name
        if path.is_file():
            try:
                kind = json.loads(path.read_text()).get("kind")
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                continue
            if isinstance(kind, str):
                return kind, None
    raise RepositoryError(
        f"{directory} is not a stored model: it has no {MANIFEST_NAME} (pull it with"
        " `kubetune models pull`) and no model.json/architecture.json naming its kind"
    )


def load_model_dir(
    directory: str | Path,
    *,
    trainer: str | None = None,
    options: dict[str, Any] | None = None,
    where: str | None = None,
) -> LoadedModel:
    """Load a model directory (as written by push, or pulled with ``kubetune models pull``).

    Every way a stored file can be broken becomes a RepositoryError naming the directory
    (or ``where``, e.g. the version it was pulled from).
    """
    directory = Path(directory)
    where = where or str(directory)
    if not directory.is_dir():
        raise RepositoryError(
            f"model directory not found: {directory} (for NAME[:REF] in a model repository,"
            " also give the repository)"
        )
    version = None
    try:
        if trainer is None:
            trainer, version = _trainer_kind(directory)
        encoder = None
        if (directory / PREPROCESSING_FILE).exists():
            encoder = FeatureEncoder.load(directory)
        model = get_trainer(trainer, options or {}).load(directory)
    except RepositoryError:
        raise
    except _load_errors() as exc:
        raise RepositoryError(
            f"cannot load the model in {where}: {type(exc).__name__}: {exc}"
        ) from exc
    return LoadedModel(model, encoder, trainer, where, version)


def load_model(
    source: str | Path,
    *,
    repo: str | Path | None = None,
    options: dict[str, Any] | None = None,
) -> LoadedModel:
    """A model that predicts on raw rows.

    ``source`` is a directory pulled with ``kubetune models pull``; or, with ``repo`` (a
    model repository path or URI), ``NAME[:REF]`` where REF is a version number, an alias
    such as ``production``, or ``latest`` (the default). Files are verified against the
    version's sha256 manifest while pulling. ``options`` are trainer options the loader
    needs: ``{"function": "module:fn"}`` for custom models, ``{"device": "cpu"}`` for torch.
    """
    if repo is None:
        return load_model_dir(source, options=options)
    from kubetune.repository import open_repository

    name, ref = parse_model_ref(str(source))
    repository = open_repository(str(repo), base_dir=Path.cwd())
    with tempfile.TemporaryDirectory(prefix="kubetune-load-") as tmp:
        manifest = repository.pull(name, ref, Path(tmp) / "model")
        where = f"{name} v{manifest.version} of {repository.uri}"
        loaded = load_model_dir(
            Path(tmp) / "model", trainer=manifest.trainer, options=options, where=where
        )
    # Models are in memory now (sklearn, torch): the temporary files are no longer needed.
    loaded.version = manifest.version
    return loaded
