"""Exceptions that describe a user mistake.

The CLI prints these as one clear line (no traceback) and exits with a non-zero code;
anything else escaping is a bug and keeps its traceback.
"""

from __future__ import annotations


class KubetuneError(Exception):
    """Base class of every error caused by user input or environment, not by a bug."""


class SpecError(KubetuneError):
    """The experiment spec is invalid. The message names the field and the problem."""


class DataError(KubetuneError):
    """The data cannot be used: a missing file or column, non-numeric features, too few rows."""


class RepositoryError(KubetuneError):
    """The model repository is unreachable, malformed, or a stored file fails verification."""


class StorageError(RepositoryError):
    """A storage URI or object store cannot be used: a bad URI or key, a missing object,
    an unreachable or unwritable location. The message names the URI, path or key.

    It is a :class:`RepositoryError` because the object store first served only the model
    repository, so code catching that keeps catching store failures; data sources turn it
    into a :class:`DataError`.
    """


class InvalidConfigError(KubetuneError):
    """Raised by a trainer when a sampled config cannot be trained (never retried)."""


class AllTrialsFailedError(KubetuneError):
    """Every trial of a search failed: there is no best config. Carries the first reason."""


class StudyInUseError(KubetuneError):
    """Another controller holds the study's lease: one controller runs a study at a time."""
