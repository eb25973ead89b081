"""The subprocess executor end to end: ``kubetune run`` with ``executor: {kind: subprocess}``.

Every trial is a separate ``python -m kubetune trial`` process started from a request file
that carries the spec as data; reports reach the controller over HTTP, so Hyperband prunes
trials that run outside the controller. Also: the exit-code mapping, and a trial that cannot
reach its controller.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from kubetune.cli.main import main
from kubetune.core.storage import journal_storage
from kubetune.core.trial import (
    ReportChannel,
    TrialFailure,
    TrialOutcome,
    TrialRequest,
    TrialStatus,
    UnusableRequestError,
    outcome_from_exit,
)
from kubetune.repository import open_repository
from kubetune.testing.trial_functions import SCRIPTED

TRAINER = """\
import numpy as np


class Majority:
    def __init__(self, label):
        self.label = label

    def predict(self, X):
        return np.full(len(X), self.label)


def train(params, data, budget, reporter, seed, final):
    # The learning curve is x * step: low x is hopeless from the first step on.
    for step in range(1, (budget or 1) + 1):
        if not final:
            reporter.report(step, params["x"] * step / 9)
    return Majority(int(np.bincount(data.y_train).argmax()))
"""

SPEC = """\
name: sub-hb
objective: {metric: val_accuracy}
data: {source: "sklearn:iris"}
trainer: {kind: custom, function: "sub_trainer:train"}
search_space:
  x: {type: float, low: 0.0, high: 1.0}
strategy: {name: random}
fidelity: {param: steps, min: 1, max: 9, reduction_factor: 3, scheduler: hyperband}
limits: {max_trials: 14, parallel: 2, trial_timeout: 2m}
executor: {kind: subprocess}
seed: 3
"""


@pytest.mark.slow
def test_kubetune_run_on_subprocesses_prunes_with_hyperband(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "sub_trainer.py").write_text(TRAINER)
    (tmp_path / "sub.yaml").write_text(SPEC)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "sub.yaml", "--model-repo", "repo"]) == 0, capsys.readouterr().err

    storage = journal_storage(tmp_path / "kubetune-runs" / "sub-hb" / "study.journal")
    trials = optuna.load_study(study_name="sub-hb", storage=storage).trials
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(pruned) + len(completed) == 14
    assert pruned, "Hyperband pruned nothing: reports did not reach the controller"
    for t in pruned:  # stopped before the full budget, on the curve the trial reported
        steps = sorted(t.intermediate_values)
        assert steps[-1] < 9
        assert t.intermediate_values[steps[-1]] == pytest.approx(t.params["x"] * steps[-1] / 9)

    folders = sorted((tmp_path / "kubetune-runs" / "sub-hb" / "trials").iterdir())
    assert len(folders) == 14
    pids = set()
    for folder in folders:
        request = TrialRequest.from_dict(json.loads((folder / "request.json").read_text()))
        assert request.spec is not None and request.spec["name"] == "sub-hb"
        result = TrialOutcome.from_dict(json.loads((folder / "result.json").read_text()))
        assert result.pruning_off is None
        pids.add((folder / "started").read_text())
        number = int(folder.name.split("-")[0])
        expected = "pruned" if any(t.number == number for t in pruned) else "completed"
        assert result.status.value == expected
    assert len(pids) == 14, "each trial ran in its own process"
    assert open_repository(tmp_path / "repo").get("sub-hb", "latest").version == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _trial(tmp_path: Path, request: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    command = [sys.executable, "-m", "kubetune", "trial", "--request", str(path)]
    command += ["--output", str(tmp_path / "result.json"), "--function", SCRIPTED]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.reliability
def test_a_trial_that_cannot_reach_its_controller_goes_on_without_pruning(
    tmp_path: Path,
) -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1/reports"  # nothing listens there
    request = TrialRequest(
        study="s",
        number=3,
        params={"action": "report", "steps": 4, "x": 0.5},
        seed=1,
        spec={
            "name": "s",
            "objective": {"metric": "value", "direction": "minimize"},
            "search_space": {"x": {"type": "float", "low": 0, "high": 1}},
        },
        report=ReportChannel(url=url, token="secret-token-value"),
    )
    done = _trial(tmp_path, request.to_dict())
    assert done.returncode == 0, done.stderr
    assert "continuing without pruning" in done.stderr and url in done.stderr
    assert "secret-token-value" not in done.stderr + done.stdout
    result = TrialOutcome.from_dict(json.loads((tmp_path / "result.json").read_text()))
    assert result.status is TrialStatus.COMPLETED
    assert len(result.curve) == 4  # every step still ran and was recorded
    assert result.pruning_off is not None and "unreachable" in result.pruning_off


@pytest.mark.reliability
def test_a_request_from_a_newer_kubetune_is_refused_with_exit_2(tmp_path: Path) -> None:
    request = TrialRequest(study="s", number=0, params={}, seed=1).to_dict()
    request["version"] = 99
    done = _trial(tmp_path, request)
    assert done.returncode == 2
    assert "schema version 99 is newer" in done.stderr
    assert not (tmp_path / "result.json").exists()


def test_request_and_result_round_trip_with_schema() -> None:
    channel = ReportChannel(url="http://c:1/v1/reports", token="t0k3n")
    request = TrialRequest(study="s", number=1, params={"a": 1}, seed=2, report=channel)
    data = request.to_dict()
    assert data["kind"] == "kubetune.dev/TrialRequest" and data["version"] == 1
    assert TrialRequest.from_dict(json.loads(json.dumps(data))) == request
    assert "t0k3n" not in repr(request)
    legacy = {"study": "s", "number": 1, "params": {}, "seed": 2}  # before versioning
    assert TrialRequest.from_dict(legacy).number == 1
    with pytest.raises(UnusableRequestError, match="expected kind"):
        TrialRequest.from_dict({**legacy, "kind": "kubetune.dev/TrialResult"})
    with pytest.raises(UnusableRequestError, match="colour: unknown field"):
        TrialRequest.from_dict({**legacy, "colour": "red"})
    # Issue 7.10: an incomplete request names the fields, not a Python signature.
    with pytest.raises(UnusableRequestError) as info:
        TrialRequest.from_dict({"study": "s", "number": "1", "params": {}})
    assert str(info.value) == "seed: missing; number: expected int, got str"
    with pytest.raises(UnusableRequestError, match=r"report\.token: missing"):
        TrialRequest.from_dict({**legacy, "report": {"url": "http://x"}})


@pytest.mark.parametrize(
    ("code", "has_result", "failure", "words"),
    [
        (0, False, TrialFailure.INFRASTRUCTURE, "without a result file"),
        (2, False, TrialFailure.ERROR, "refused its request"),
        (3, False, TrialFailure.INVALID_CONFIG, "invalid config"),
        (4, False, TrialFailure.ERROR, "the trial failed"),
        (-9, False, TrialFailure.INFRASTRUCTURE, "died (killed by signal 9, out of memory?)"),
        (137, True, TrialFailure.INFRASTRUCTURE, "(killed by signal 9, exit code 137, out of"),
        (-15, False, TrialFailure.INFRASTRUCTURE, "died (killed by signal 15)"),
        (1, True, TrialFailure.ERROR, "the trial code ended the trial process (exit code 1)"),
        (7, False, TrialFailure.ERROR, "ended the trial process (exit code 7)"),
        (3, True, TrialFailure.INVALID_CONFIG, "from the result"),
    ],
)
@pytest.mark.reliability
def test_exit_codes_map_to_failure_kinds(
    code: int, has_result: bool, failure: TrialFailure, words: str
) -> None:
    result = TrialOutcome.failed(TrialFailure.INVALID_CONFIG, "from the result")
    outcome = outcome_from_exit(code, result if has_result else None, "last log line")
    assert outcome.failure is failure
    assert words in outcome.message
    if not has_result:
        assert outcome.message.endswith(": last log line")


@pytest.mark.parametrize(
    ("executor", "message"),
    [
        (
            "{kind: warp}",
            "executor.kind: unknown executor 'warp' (known: local, subprocess, kubernetes)",
        ),
        ("{kind: subprocess, pyhton: x}", "executor.pyhton: unknown option for subprocess"),
        ("{kind: subprocess, cancel_grace_s: -1}", "executor.cancel_grace_s: must be a positive"),
        ("{kind: local, threads_per_worker: 0}", "executor.threads_per_worker: must be an integer"),
    ],
)
def test_bad_executor_sections_are_named(
    executor: str,
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "sub_trainer.py").write_text(TRAINER)
    (tmp_path / "s.yaml").write_text(SPEC.replace("{kind: subprocess}", executor))
    monkeypatch.chdir(tmp_path)
    assert main(["run", "s.yaml", "--model-repo", "repo"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "repo").exists()


@pytest.mark.reliability
def test_report_server_refuses_wrong_tokens_and_unknown_trials() -> None:
    import io

    from kubetune.executors.report_channel import HttpReporter, ReportServer

    server = ReportServer("right-token")
    try:
        server.expect(5, attempt=1)
        stderr = io.StringIO()
        wrong = HttpReporter(ReportChannel(server.url, "wrong-token"), 5, 1, stderr=stderr)
        wrong.report(1, 0.5)  # refused: goes on without pruning, says why
        assert wrong.pruning_off == "the controller answered HTTP 401"
        assert "wrong-token" not in stderr.getvalue()
        stranger = HttpReporter(server.channel(), 6, 1, stderr=io.StringIO())
        stranger.report(1, 0.5)
        assert stranger.pruning_off == "the controller answered HTTP 404"
        assert server.events.empty()  # neither reached the loop
    finally:
        server.close()


def test_validate_shows_the_executor_and_refuses_unknown_kinds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "sub_trainer.py").write_text(TRAINER)
    (tmp_path / "s.yaml").write_text(SPEC)
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "s.yaml"]) == 0
    assert "executor: subprocess" in capsys.readouterr().out
    assert main(["validate", "s.yaml", "--output", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["executor"] == {"kind": "subprocess"}
    (tmp_path / "s.yaml").write_text(SPEC.replace("{kind: subprocess}", "{kind: warp}"))
    assert main(["validate", "s.yaml"]) == 2
    assert "executor.kind: unknown executor 'warp'" in capsys.readouterr().err


@pytest.mark.reliability
def test_a_result_finished_before_the_controller_died_is_recorded_not_rerun(
    tmp_path: Path,
) -> None:
    """Issue 7.13: a trial that computed its result while the controller died must not
    lose it. Its result file is complete (atomic), so recover() hands it back."""
    from kubetune.core.executor import FinishedEvent
    from kubetune.executors.subprocess import SubprocessExecutor

    spec = {
        "name": "s",
        "objective": {"metric": "value", "direction": "minimize"},
        "search_space": {"x": {"type": "float", "low": 0, "high": 1}},
    }
    done = TrialOutcome(TrialStatus.COMPLETED, value=0.25, metrics={"value": 0.25})
    folder = tmp_path / "trials" / "7-a1"
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(json.dumps(done.to_dict()))
    (tmp_path / "trials" / "8-a1").mkdir()  # never finished: nothing to recover
    with SubprocessExecutor(
        spec_data=spec, spec_dir=str(tmp_path), capacity=2, work_dir=tmp_path / "trials"
    ) as executor:
        requests = [TrialRequest(study="s", number=n, params={}, seed=1) for n in (7, 8)]
        assert executor.recover(requests) == [7]
        events = executor.poll(0.1)
    assert events == [FinishedEvent(7, done)]
