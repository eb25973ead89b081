"""Where one experiment run's things go, decided once.

A :class:`RunContext` is built from the spec plus explicit overrides (the CLI's flags and
environment variables, a pipeline's parameters) and handed to the search, the study
opening and the run step, so no other module works out a run folder, a study file or a
model repository on its own::

    <runs_dir>/<name>/                 run_dir (default runs_dir: ./kubetune-runs)
    <runs_dir>/<name>/study.journal    the study, unless storage is set
    <runs_dir>/<name>/trials/          trial requests and results
    <runs_dir>/<name>/artifacts/       trial checkpoints and files, unless artifacts is set
    <runs_dir>/<name>/summary.json     the run summary
    <runs_dir>/<name>/report.html      the HTML report

It only computes locations (no I/O, no adapters), so it lives in core and the core search
can build a default one; opening a store from ``model_repo`` is the caller's job.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from kubetune.core.paths import local_path, uri_scheme
from kubetune.core.spec import DEFAULT_MODEL_REPO, ExperimentSpec
from kubetune.errors import SpecError

__all__ = ["DEFAULT_MODEL_REPO", "RunContext", "study_storage_url"]


_JOURNAL_PREFIX = "journal:"


def study_storage_url(value: str, base_dir: Path) -> str:
    """A study storage setting made unambiguous: a journal file (a path, ``file://`` URI or
    ``journal:PATH``) becomes an absolute path; a database URL (``sqlite:///``,
    ``postgresql://``...) is passed to optuna unchanged."""
    path_part = value.removeprefix(_JOURNAL_PREFIX)
    if uri_scheme(path_part) not in (None, "file"):
        return value
    path = local_path(path_part, base_dir)
    assert path is not None  # noqa: S101 (a plain path or a file URI)
    return str(path)


def _as_uri(location: str, base_dir: Path) -> str:
    """A local folder as an absolute ``file://`` URI; any other URI unchanged."""
    path = local_path(location, base_dir)
    return path.as_uri() if path is not None else location.strip()


@dataclass(frozen=True)
class RunContext:
    """The locations of one run. Build it with :meth:`from_spec`."""

    experiment: str
    run_dir: Path
    """Absolute folder of this run's outputs."""
    study_storage: str | None
    """Optuna storage: an absolute journal file path or a database URL; None: in memory."""
    model_repo: str
    """The model repository as given (a directory or URI); relative to ``base_dir``."""
    base_dir: Path
    """The folder relative output locations were resolved against (the working directory)."""
    artifacts: str = ""
    """The trial artifact store as a URI (``file:///abs`` or ``s3://bucket/prefix``), so a
    trial in another process or a pod reads it the same way."""
    study_name: str = ""
    """The study's name in the storage; empty: the experiment's name. Re-tuning keeps one
    study per data version (``<experiment>.<data hash>``) in the same storage."""

    def __post_init__(self) -> None:
        if not self.study_name:
            object.__setattr__(self, "study_name", self.experiment)

    def for_study(self, study_name: str) -> RunContext:
        """The same locations with another study (its trials in a folder of their own)."""
        return replace(self, study_name=study_name)

    @classmethod
    def from_spec(
        cls,
        spec: ExperimentSpec,
        *,
        model_repo: str | None = None,
        storage: str | None = None,
        in_memory_study: bool = False,
        base_dir: Path | None = None,
        artifacts: str | None = None,
    ) -> RunContext:
        """The run's locations: an explicit override (``model_repo``, ``storage``,
        ``artifacts``) wins over the spec, the spec over the default. ``in_memory_study``
        keeps the study in memory unless a storage is given. Outputs are relative to
        ``base_dir`` (default: the current directory)."""
        base = (base_dir or Path.cwd()).absolute()
        runs = local_path(spec.runs_dir, base)
        if runs is None:
            raise SpecError(
                f"runs_dir: {spec.runs_dir!r} is not a local folder; give a path or file:// URI"
            )
        run_dir = runs / spec.name
        chosen_storage = storage or spec.storage
        if chosen_storage:
            study: str | None = study_storage_url(chosen_storage, base)
        else:
            study = None if in_memory_study else str(run_dir / "study.journal")
        return cls(
            experiment=spec.name,
            run_dir=run_dir,
            study_storage=study,
            model_repo=model_repo or spec.model_repo or DEFAULT_MODEL_REPO,
            base_dir=base,
            artifacts=_as_uri(artifacts or spec.artifacts or str(run_dir / "artifacts"), base),
        )

    @property
    def trials_dir(self) -> Path:
        """Where trial requests, results and artifacts go (one folder per study: trial
        files are named by trial number, which every study starts again from 0)."""
        if self.study_name == self.experiment:
            return self.run_dir / "trials"
        return self.run_dir / "trials" / self.study_name

    @property
    def summary_path(self) -> Path:
        return self.run_dir / "summary.json"

    @property
    def report_path(self) -> Path:
        return self.run_dir / "report.html"
