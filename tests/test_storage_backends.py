"""The same tuning run, resumed, on every study storage kubetune supports.

PostgreSQL is a real server (installed and started by .ci/run); locally the test is
skipped unless KUBETUNE_TEST_POSTGRES_URL points at one (and fails under CI without it).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import optuna
import pytest

import kubetune
from kubetune.core.storage import open_storage
from kubetune.testing.tools import postgres_url

SPACE = {"x": {"type": "float", "low": -3.0, "high": 3.0}, "k": ["a", "b"]}


def objective(params: dict) -> float:
    return (params["x"] - 1.0) ** 2 + (0.5 if params["k"] == "b" else 0.0)


def _storage_urls(tmp: Path) -> dict[str, str | None]:
    return {
        "journal": str(tmp / "study.journal"),
        "sqlite": f"sqlite:///{tmp / 'study.db'}",
        "postgresql": os.environ.get("KUBETUNE_TEST_POSTGRES_URL"),
    }


@pytest.mark.parametrize("backend", ["journal", "sqlite", "postgresql"])
def test_study_persists_and_resumes(backend: str, tmp_path: Path) -> None:
    url = _storage_urls(tmp_path)[backend]
    if url is None:
        url = postgres_url()  # fails under CI, skips elsewhere
    name = f"storage-{backend}-{uuid.uuid4().hex[:8]}"

    first = kubetune.tune(
        objective, SPACE, strategy="random", max_trials=4, storage=url, name=name, seed=3
    )
    assert first.stop_reason.startswith("max_trials")
    first_params = [t.params for t in first.study.trials]
    second = kubetune.tune(
        objective, SPACE, strategy="random", max_trials=7, storage=url, name=name, seed=3
    )

    stored = optuna.load_study(study_name=name, storage=open_storage(url))
    numbers = [t.number for t in stored.trials]
    assert numbers == list(range(7)), "resuming continued the numbering, nothing was redone"
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in stored.trials)
    # The first run's trials are untouched by the second run.
    assert [t.params for t in stored.trials[:4]] == first_params
    assert second.best_value == min(t.value for t in stored.trials)


@pytest.mark.reliability
def test_a_torn_journal_tail_is_cut_and_kept_aside(tmp_path: Path) -> None:
    """A controller killed mid-write (or a full disk) leaves half a record at the end.

    Without repair, the resumed run appends after it and every later load fails."""
    path = tmp_path / "study.journal"
    first = kubetune.tune(objective, SPACE, strategy="random", max_trials=4, storage=str(path))
    intact = path.read_bytes()
    torn = b'{"op_code": 5, "worker_id": "x", "trial_id": 3, "param_na'
    path.write_bytes(intact + torn)

    again = kubetune.tune(objective, SPACE, strategy="random", max_trials=6, storage=str(path))
    assert again.study.study_name == first.study.study_name
    backups = list(tmp_path.glob("study.journal.torn-*"))
    assert len(backups) == 1 and backups[0].read_bytes() == intact + torn
    assert path.read_bytes().startswith(intact) and torn not in path.read_bytes()
    # optuna itself (no kubetune repair involved) reads the result
    study = optuna.load_study(
        study_name="kubetune",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(path))
        ),
    )
    assert len([t for t in study.trials if t.state.is_finished()]) == 6


@pytest.mark.reliability
def test_a_garbled_complete_line_at_the_end_is_cut_too(tmp_path: Path) -> None:
    from kubetune.core.storage import repair_torn_tail

    path = tmp_path / "j.journal"
    path.write_bytes(b'{"a": 1}\n{"b": 2}\n{"c": \n')
    backup = repair_torn_tail(path)
    assert backup is not None and path.read_bytes() == b'{"a": 1}\n{"b": 2}\n'
    assert repair_torn_tail(path) is None  # intact: nothing to do, no backup
    path.write_bytes(b'{"a": 1')
    repair_torn_tail(path)
    assert path.read_bytes() == b""


@pytest.mark.reliability
def test_a_full_disk_is_one_error_line_and_the_rerun_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import errno

    import kubetune.core.storage as storage_module
    from kubetune.cli.main import main

    (tmp_path / "spec.yaml").write_text(
        "name: full-disk\n"
        "objective: {metric: val_accuracy}\n"
        'data: {source: "sklearn:iris"}\n'
        "trainer: {kind: sklearn, estimator: sklearn.neighbors.KNeighborsClassifier}\n"
        "search_space: {n_neighbors: {type: int, low: 1, high: 15}}\n"
        "strategy: {name: random}\n"
        "limits: {max_trials: 6, parallel: 1}\n"
    )
    monkeypatch.chdir(tmp_path)
    real_write = storage_module.write_records
    calls = {"n": 0}

    def write_until_full(fh: Any, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] == 25:  # the disk fills up mid-record, as a real ENOSPC does
            fh.write(data[: len(data) // 2])
            fh.flush()
            raise OSError(errno.ENOSPC, "No space left on device", fh.name)
        real_write(fh, data)

    monkeypatch.setattr(storage_module, "write_records", write_until_full)
    assert main(["run", "spec.yaml"]) == 2
    err = capsys.readouterr().err
    assert "error: no space left on the device writing" in err and "study.journal" in err
    assert "Traceback" not in err
    # the half-written record was undone at once: nothing torn was left to repair
    journal = tmp_path / "kubetune-runs" / "full-disk" / "study.journal"
    assert journal.read_bytes().endswith(b"\n")
    assert not list(journal.parent.glob("study.journal.torn-*"))

    monkeypatch.setattr(storage_module, "write_records", real_write)  # space freed
    assert main(["run", "spec.yaml"]) == 0, capsys.readouterr().err
    study = optuna.load_study(
        study_name="full-disk",
        storage=open_storage(str(tmp_path / "kubetune-runs" / "full-disk" / "study.journal")),
    )
    assert len([t for t in study.trials if t.state.name == "COMPLETE"]) == 6
