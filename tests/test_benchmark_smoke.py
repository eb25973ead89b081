"""The overhead benchmark runs and reports sane numbers (no timing assertion: see the script)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "overhead.py"


@pytest.fixture(scope="module")
def overhead() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kubetune_bench_overhead", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # cloudpickle registers it by value for the workers
    spec.loader.exec_module(module)
    return module


def _positive(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


def test_noop_benchmark_structure(overhead: ModuleType) -> None:
    result = overhead.bench_noop(n_trials=20, repeats=1, workers=2)
    assert result["scenario"] == "noop" and result["storage"] == "memory"
    assert result["trials"] == 20 and result["repeats"] == 1 and result["workers"] == 2
    for key in ("kubetune_ms_per_trial", "optuna_ms_per_trial", "ratio", "worker_startup_s"):
        assert _positive(result[key]), (key, result[key])
    assert math.isfinite(result["overhead_ms_per_trial"])
    assert result["overhead_ms_per_trial"] == pytest.approx(
        result["kubetune_ms_per_trial"] - result["optuna_ms_per_trial"]
    )
    assert len(result["kubetune_ms_per_trial_all"]) == 1
    assert isinstance(result["meets_target"], bool)


def test_noop_benchmark_on_a_journal(overhead: ModuleType) -> None:
    result = overhead.bench_noop(n_trials=10, repeats=1, workers=1, storage="journal")
    assert result["storage"] == "journal"
    assert _positive(result["kubetune_ms_per_trial"]) and _positive(result["optuna_ms_per_trial"])


def test_sleep_benchmark_structure(overhead: ModuleType) -> None:
    result = overhead.bench_sleep(n_trials=6, sleep_s=0.02, repeats=1, workers=2)
    assert result["scenario"] == "sleep"
    for key in ("ideal_s", "actual_s", "efficiency"):
        assert _positive(result[key]), (key, result[key])
    # the ideal counts the trials' own work: 6 x 0.02 s over 2 workers, at least
    assert result["ideal_s"] >= 6 * 0.02 / 2
    assert result["efficiency"] == pytest.approx(result["ideal_s"] / result["actual_s"])
    assert result["efficiency"] <= 1.0 + 1e-6  # nothing beats the ideal


def test_main_prints_json_and_table(
    overhead: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--trials", "8", "--repeats", "1", "--sleep-trials", "4", "--sleep", "0.01"]
    assert overhead.main([*args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"noop", "sleep"}
    assert _positive(data["noop"]["kubetune_ms_per_trial"])
    assert _positive(data["sleep"]["efficiency"])

    table = overhead.format_table(data["noop"], data["sleep"])
    assert "overhead (difference)" in table and "efficiency" in table
