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


# --- benchmarks/loop_scaling.py ------------------------------------------------------------------

SCALING = SCRIPT.parent / "loop_scaling.py"


@pytest.fixture(scope="module")
def scaling() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kubetune_bench_loop_scaling", SCALING)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # cloudpickle registers it by value for the workers
    spec.loader.exec_module(module)
    return module


def test_loop_scaling_structure(scaling: ModuleType) -> None:
    data = scaling.bench(n_trials=40, window=10, repeats=1, local_trials=12, local_window=4)
    assert data["trials"] == 40 and data["window"] == 10 and data["repeats"] == 1
    rows = {(r["storage"], r["loop"].split()[0]) for r in data["results"]}
    assert rows == {(s, loop) for s in ("memory", "journal") for loop in ("optuna", "kubetune,")}
    for row in [*data["results"], data["local_executor"]]:
        for key in ("first_ms_per_trial", "last_ms_per_trial", "last_over_first"):
            assert _positive(row[key]), (row["loop"], key, row[key])
        assert row["last_over_first"] == pytest.approx(
            row["last_ms_per_trial"] / row["first_ms_per_trial"]
        )
    for storage, c in data["comparisons"].items():
        by_loop = {r["loop"].split()[0]: r for r in data["results"] if r["storage"] == storage}
        assert c["last_ratio"] == pytest.approx(
            by_loop["kubetune,"]["last_ms_per_trial"] / by_loop["optuna"]["last_ms_per_trial"]
        )
    for row in data["results"]:
        if row["storage"] == "journal":  # ask, 4 params, tell at least; kubetune adds attrs
            assert row["writes_per_trial"] >= 6, row
    assert isinstance(data["meets_target"], bool)
    table = scaling.format_table(data)
    assert "last/first" in table and "kubetune / optuna" in table and "local executor" in table


def test_loop_scaling_main_writes_json(
    scaling: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "scaling.json"
    args = ["--trials", "20", "--window", "5", "--repeats", "1", "--local-trials", "0"]
    assert scaling.main([*args, "--storage", "memory", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["trials"] == 20 and data["local_executor"] is None
    assert "kubetune - optuna" in capsys.readouterr().out


def test_loop_scaling_needs_two_windows(scaling: ModuleType) -> None:
    with pytest.raises(RuntimeError, match="need at least"):
        scaling.bench(n_trials=5, window=5, repeats=1, storages=("memory",))
