"""The executor benchmark runs end to end and reports sane numbers (no timing assertion)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "executors.py"


@pytest.mark.slow
def test_quick_run_reports_both_executors() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [(r["executor"], r["trial_s"]) for r in rows] == [
        ("local", 0.0),
        ("subprocess", 0.0),
        ("local", 0.1),
        ("subprocess", 0.1),
    ]
    for row in rows:
        assert row["wall_s_per_trial"] > 0 and row["trials"] == 6
        # a trial never takes less than its own sleep spread over 2 slots
        assert row["wall_s_per_trial"] >= row["trial_s"] / 2
    assert all(r["ratio_to_local"] > 0 for r in rows if r["executor"] == "subprocess")
