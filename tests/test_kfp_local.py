"""Both pipeline forms end to end through ``kfp.local.SubprocessRunner`` (``kubetune run
--kfp-local``): every task is a real subprocess running the compiled component command,
as a pod would, with this Python instead of the image. What the local runner skips, with
a warning: GPU requests, tolerations, node selectors and Kubernetes Secrets (the study
storage comes from the environment instead) — so no cluster is involved, and none is
simulated."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

import kubetune
from kubetune.cli.main import main
from kubetune.repository import open_repository

SPEC = """\
name: iris-kfp
objective: {metric: accuracy%s}
data: {source: "sklearn:iris"}
trainer: {kind: sklearn, estimator: sklearn.linear_model.SGDClassifier}
search_space:
  alpha: {type: float, low: 1.0e-5, high: 1.0e-1, log: true}
  loss: log_loss
strategy: {name: random}
limits: {max_trials: %d, parallel: 2}
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    # Task subprocesses run in other folders: they must import this checkout's kubetune.
    src = str(Path(kubetune.__file__).resolve().parents[1])
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))
    )
    return tmp_path


def _run(workdir: Path, spec_text: str, *args: str, repo: str = "repo") -> dict:
    (workdir / "spec.yaml").write_text(spec_text)
    code = main(
        ["run", "--kfp-local", "spec.yaml", "--model-repo", repo, "--output", "json", *args]
    )
    assert code == 0
    return json.loads((workdir / "kubetune-runs" / "iris-kfp" / "summary.json").read_text())


def _study_trials(workdir: Path, study: str = "iris-kfp") -> list[optuna.trial.FrozenTrial]:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = workdir / "kubetune-runs" / "iris-kfp" / "study.journal"
    storage = JournalStorage(JournalFileBackend(str(path)))
    return optuna.load_study(study_name=study, storage=storage).trials


@pytest.fixture
def simulated_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Simulated S3 (moto's server on a loopback port), set in the environment that the
    pipeline's task processes inherit, as a cluster's Secret would set it."""
    from kubetune.testing.s3 import SimulatedS3Server

    with SimulatedS3Server() as server:
        monkeypatch.setenv("KUBETUNE_S3_ENDPOINT", f"http://{server.endpoint}")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "kfp-e2e-access")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "kfp-e2e-secret")
        monkeypatch.setenv("AWS_REGION", "us-east-1")
        monkeypatch.setenv("KUBETUNE_S3_CREATE_BUCKET", "1")
        yield "s3://kfp-e2e/models"


@pytest.mark.slow
def test_looping_form_stops_on_its_target_and_pushes_a_version(
    workdir: Path, simulated_s3: str
) -> None:
    """Two rounds compiled (4 trials, 2 per round); the target is reached in the first, so
    its record says 'stop' and the Else branch trains, evaluates and pushes, to the model
    repository on simulated S3."""
    summary = _run(workdir, SPEC % (", target: 0.3", 4), repo=simulated_s3)
    assert summary["stop_kind"] == "target"
    assert summary["completed"] == 2 and summary["failed"] == 0
    assert len(_study_trials(workdir)) == 2
    assert summary["model_uri"].startswith(simulated_s3)
    manifest = open_repository(simulated_s3).get("iris-kfp", "production")
    assert manifest.version == summary["model_version"] == 1
    assert manifest.params == summary["best_params"]
    root = workdir / "kubetune-runs" / "iris-kfp" / "kfp-local"
    assert (root / "looping.yaml").exists()
    assert not list(root.glob("*/suggest-2"))  # round 2 never ran


@pytest.mark.slow
def test_controller_form_runs_its_trial_count_and_pushes_a_version(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With retune: the first run searches the study of its data version and records its
    KFP run in the manifest; a second run on the same data stops after its retune task,
    successfully, and pushes nothing."""
    spec = SPEC % ("", 3) + "retune: {warm_start: 2}\n"
    summary = _run(workdir, spec, "--form", "controller")
    assert json.loads(capsys.readouterr().out) == summary  # kfp's task logs went to stderr
    assert summary["stop_kind"] == "max_trials"
    assert summary["completed"] == 3
    assert summary["study"].startswith("iris-kfp.")  # the study of this data version
    assert len(_study_trials(workdir, summary["study"])) == 3
    repo = open_repository("repo", base_dir=workdir)
    manifest = repo.get("iris-kfp", summary["model_version"])
    assert manifest.metrics["test_accuracy"] >= 0.0
    provenance = manifest.extra["provenance"]
    assert provenance["run_id"] and provenance["run_name"].startswith("iris-kfp-controller")
    assert provenance["data"]["fingerprint"] == manifest.data_fingerprint

    again = _run(workdir, spec, "--form", "controller")
    assert again["skipped"].startswith("data unchanged since production v1")
    assert [m.version for m in repo.versions("iris-kfp")] == [1]  # nothing pushed
    assert not list((workdir / "kubetune-runs" / "iris-kfp" / "kfp-local").glob("*/search"))[1:]
