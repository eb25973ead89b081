"""Python security lint: ruff's flake8-bandit rules (S) are on for the project and clean on
src/, and the finding they led to stays fixed (a trial's report URL must be http(s))."""

from __future__ import annotations

import io
import subprocess
import tomllib
from pathlib import Path

import pytest

from kubetune.core.trial import ReportChannel
from kubetune.executors.report_channel import HttpReporter
from kubetune.testing.tools import require_tool

pytestmark = pytest.mark.reliability  # part of the suite: pytest -m reliability

ROOT = Path(__file__).resolve().parents[1]


def test_bandit_rules_are_selected_and_src_passes_them() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
    assert "S" in config["select"]
    assert not any(rule.startswith("S") for rule in config.get("ignore", []))
    ruff = require_tool("ruff", "pip install ruff, in the dev extra")
    result = subprocess.run(
        [ruff, "check", "--select", "S", "--no-cache", "src"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_report_url_that_is_not_http_is_never_opened(tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text('{"prune": true}')  # what file:// would read, and obey
    stderr = io.StringIO()
    reporter = HttpReporter(ReportChannel(url=secret.as_uri(), token="t"), 3, 0, stderr=stderr)
    reporter.report(1, 0.5)  # no TrialPruned: the file was not read
    assert reporter.pruning_off == "the report URL is not http(s)"
    assert "continuing without pruning" in stderr.getvalue()
