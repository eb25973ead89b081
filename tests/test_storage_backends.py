"""The same tuning run, resumed, on every study storage kubetune supports.

PostgreSQL is a real server (installed and started by .ci/run); locally the test is
skipped unless KUBETUNE_TEST_POSTGRES_URL points at one.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import optuna
import pytest

import kubetune
from kubetune.core.storage import open_storage

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
        pytest.skip("set KUBETUNE_TEST_POSTGRES_URL to a PostgreSQL database (CI does)")
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
