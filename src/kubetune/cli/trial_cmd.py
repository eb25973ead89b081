"""``kubetune trial``: run one trial from a serialized request (the pod's entry point)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from kubetune.core.run_trial import run_trial
from kubetune.core.spec import load_spec
from kubetune.core.trial import ExitCode, TrialFailure, TrialRequest, TrialStatus
from kubetune.errors import KubetuneError
from kubetune.steps.search import normalize_objective
from kubetune.steps.trial import BuiltinTrial
from kubetune.storage import atomic_write_text


class JsonLinesReporter:
    """Appends each report to a file as it happens (no scheduler listens here)."""

    def __init__(self, path: Path | None) -> None:
        self._path = path

    def report(self, step: int, value: float) -> None:
        if self._path is not None:
            with self._path.open("a") as fh:
                fh.write(json.dumps({"step": step, "value": value}) + "\n")


def run_trial_command(spec_path: str, request_path: str, output: str, progress: str | None) -> int:
    try:
        spec = normalize_objective(load_spec(spec_path))
        request = TrialRequest.from_dict(json.loads(Path(request_path).read_text()))
    except (OSError, ValueError, TypeError) as exc:
        print(f"error: cannot read trial request {request_path}: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except KubetuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    out = Path(output)
    progress_path = Path(progress) if progress else None
    try:  # before training: a pod that cannot write its result should not train first
        for path in (out, progress_path):
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"error: cannot create the output folder: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    fn = BuiltinTrial.from_spec(spec)
    outcome = run_trial(fn, request, JsonLinesReporter(progress_path), spec.objective.metric)
    atomic_write_text(out, json.dumps(outcome.to_dict(), indent=2))  # never half a result
    print(
        f"trial {request.number}: {outcome.status.value}"
        + (f" {spec.objective.metric}={outcome.value:.6g}" if outcome.value is not None else "")
        + (f" ({outcome.message.splitlines()[0]})" if outcome.message else ""),
        file=sys.stderr,
    )
    if outcome.status is not TrialStatus.FAILED:
        return ExitCode.OK
    if outcome.failure is TrialFailure.INVALID_CONFIG:
        return ExitCode.INVALID_CONFIG
    return ExitCode.TRIAL_FAILED
