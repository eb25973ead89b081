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
