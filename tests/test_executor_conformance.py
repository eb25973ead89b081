"""Every executor keeps the contract of ``kubetune.core.executor.Executor``.

The suite lives in ``kubetune.testing.executors``; each executor runs it here with the
scripted trial function: the local worker pool with the function object, the subprocess
executor through the real ``kubetune trial`` entry point (``--function``), one process per
trial, reports over HTTP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kubetune.core.executor import Executor
from kubetune.executors.local import LocalExecutor
from kubetune.executors.subprocess import SubprocessExecutor
from kubetune.testing.executors import ExecutorConformance, MakeExecutor
from kubetune.testing.trial_functions import SCRIPTED, scripted

SPEC: dict[str, Any] = {
    "name": "conformance",
    "objective": {"metric": "value", "direction": "minimize"},
    "search_space": {"x": {"type": "float", "low": 0, "high": 1}},
}


class TestLocalExecutor(ExecutorConformance):
    @pytest.fixture
    def make_executor(self) -> MakeExecutor:
        def make(capacity: int) -> Executor:
            return LocalExecutor(scripted, workers=capacity, metric="value")

        return make


@pytest.mark.slow
class TestSubprocessExecutor(ExecutorConformance):
    @pytest.fixture
    def make_executor(self, tmp_path: Path) -> MakeExecutor:
        def make(capacity: int) -> Executor:
            return SubprocessExecutor(
                spec_data=SPEC,
                spec_dir=str(tmp_path),
                capacity=capacity,
                work_dir=tmp_path / "trials",
                function=SCRIPTED,
                cancel_grace_s=5.0,
            )

        return make


def test_executors_are_imported_only_when_their_kind_is_used() -> None:
    import subprocess
    import sys

    code = (
        "import sys, kubetune.executors as e\n"
        "from kubetune.core.spec import parse_spec\n"
        "spec = parse_spec({'name': 'x', 'objective': {'metric': 'value', 'direction':"
        " 'minimize'}, 'search_space': {'x': [1, 2]}})\n"
        "e.create_executor(spec, trial_fn=lambda r, p: 1.0).close()\n"
        "print(sorted(m for m in sys.modules if m.startswith('kubetune.executors.')))\n"
        "print('kubernetes' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    modules, kubernetes = done.stdout.splitlines()
    # the local executor and the shared option checks; not subprocess, not report_channel
    assert modules == "['kubetune.executors.local', 'kubetune.executors.options']"
    assert kubernetes == "False"
