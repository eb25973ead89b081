"""Reliability: out of space for the study, the run folder and the model repository (14.4).

The full disk is real, not mocked: each scenario runs in a private mount namespace
(``unshare -rm``, no root needed where user namespaces are allowed) on a tmpfs a few KiB in
size, so ``kubetune run`` meets a genuine ENOSPC. The tmpfs is then grown in place and the
same command is run again: it must resume from the intact state and finish.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from kubetune.core.storage import journal_storage
from kubetune.repository import open_repository

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

KUBETUNE = [sys.executable, "-m", "kubetune"]


def _spec(tmp_path: Path, runs_dir: Path, max_trials: int) -> Path:
    """The spec; its study lives in the run folder unless ``--storage`` says otherwise."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        textwrap.dedent(
            f"""
            name: full
            objective: {{metric: val_accuracy, direction: maximize}}
            data: {{source: "sklearn:iris"}}
            trainer: {{kind: sklearn, estimator: sklearn.linear_model.LogisticRegression}}
            search_space:
              C: {{type: float, low: 0.01, high: 10, log: true}}
            strategy: {{name: random}}
            limits: {{max_trials: {max_trials}, parallel: 1}}
            runs_dir: {runs_dir}
            seed: 0
            """
        )
    )
    return spec


def _in_namespace(script: str, tmp_path: Path) -> dict[str, str]:
    """Run ``script`` (bash) in a private mount namespace; returns its KEY=VALUE lines."""
    assert shutil.which("unshare"), "util-linux's unshare is needed for the disk-full tests"
    env = {**os.environ, "KUBETUNE": " ".join(KUBETUNE), "NO_COLOR": "1"}
    done = subprocess.run(
        ["unshare", "-rm", "bash", "-euc", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


def test_study_on_a_full_disk_stops_cleanly_and_resumes(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    spec = _spec(tmp_path, disk / "runs", max_trials=60)
    out = _in_namespace(
        f"""
        mount -t tmpfs -o size=24k tmpfs {disk}
        set +e
        $KUBETUNE run {spec} --model-repo {tmp_path}/repo > run1.out 2> run1.err
        echo RC1=$?
        cp {disk}/runs/full/study.journal journal-after-run1
        mount -o remount,size=64m {disk}
        $KUBETUNE run {spec} --model-repo {tmp_path}/repo > run2.out 2> run2.err
        echo RC2=$?
        cp {disk}/runs/full/study.journal journal-after-run2
        """,
        tmp_path,
    )
    err1 = (tmp_path / "run1.err").read_text()
    assert out["RC1"] == "2", err1
    assert "no space left on the device" in err1
    assert "Traceback" not in err1 + (tmp_path / "run1.out").read_text()

    # the study the full disk interrupted is intact: it loads, and what it holds is real
    def load(name: str) -> list[optuna.trial.FrozenTrial]:
        study = optuna.load_study(study_name="full", storage=journal_storage(tmp_path / name))
        return study.get_trials(deepcopy=False)

    before = load("journal-after-run1")
    done_before = [t for t in before if t.state == TrialState.COMPLETE]
    assert 0 < len(done_before) < 60, "the disk did not fill during the search"
    assert all(t.value is not None and 0 <= t.value <= 1 for t in done_before)

    # same command, space freed: resumes from where it was and finishes
    err2 = (tmp_path / "run2.err").read_text()
    assert out["RC2"] == "0", err2
    assert "resuming:" in (tmp_path / "run2.out").read_text() + err2
    after = {t.number: t for t in load("journal-after-run2")}
    assert sum(t.state == TrialState.COMPLETE for t in after.values()) == 60
    for trial in done_before:  # completed trials are kept as they were, not run again
        assert after[trial.number].state == TrialState.COMPLETE
        assert after[trial.number].value == trial.value
    assert not any(t.state == TrialState.RUNNING for t in after.values())
    assert open_repository(tmp_path / "repo").versions("full")


def test_model_repository_on_a_full_disk_shows_no_half_model(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    spec = _spec(tmp_path, tmp_path / "runs", max_trials=4)
    out = _in_namespace(
        f"""
        mount -t tmpfs -o size=12k tmpfs {disk}
        set +e
        $KUBETUNE run {spec} --model-repo {disk}/repo > run1.out 2> run1.err
        echo RC1=$?
        cp {tmp_path}/runs/full/summary.json summary-after-run1.json
        $KUBETUNE models list --model-repo {disk}/repo --output json > list1.json 2> list1.err
        echo LIST1=$?
        mount -o remount,size=64m {disk}
        $KUBETUNE run {spec} --model-repo {disk}/repo > run2.out 2> run2.err
        echo RC2=$?
        $KUBETUNE models pull full --model-repo {disk}/repo --dest pulled > pull.out 2> pull.err
        echo PULL=$?
        $KUBETUNE models list --model-repo {disk}/repo --output json > list2.json 2> list2.err
        """,
        tmp_path,
    )
    err1 = (tmp_path / "run1.err").read_text()
    assert out["RC1"] == "2", err1
    assert "No space left on device" in err1 and f"{disk}/repo" in err1
    assert "Traceback" not in err1
    # the search's results are kept even though the push failed
    summary = json.loads((tmp_path / "summary-after-run1.json").read_text())
    assert summary["failed_step"] == "push" and summary["completed"] == 4
    # no half-written version is visible
    assert out["LIST1"] == "0", (tmp_path / "list1.err").read_text()
    assert json.loads((tmp_path / "list1.json").read_text())["models"] == []

    # space freed: the same command pushes a whole, verified model
    assert out["RC2"] == "0", (tmp_path / "run2.err").read_text()
    assert out["PULL"] == "0", (tmp_path / "pull.err").read_text()
    listed = json.loads((tmp_path / "list2.json").read_text())["models"]
    assert [m["name"] for m in listed] == ["full"], listed
    assert any((tmp_path / "pulled").iterdir())


def test_run_folder_on_a_full_disk_ends_with_one_error_and_resumes(tmp_path: Path) -> None:
    """The study elsewhere (as with PostgreSQL), only the run folder on the full disk."""
    disk = tmp_path / "disk"
    disk.mkdir()
    spec = _spec(tmp_path, disk / "runs", max_trials=4)
    study = tmp_path / "study.journal"
    out = _in_namespace(
        f"""
        mount -t tmpfs -o size=4k tmpfs {disk}
        set +e
        $KUBETUNE run {spec} --storage {study} --model-repo {tmp_path}/repo > run1.out 2> run1.err
        echo RC1=$?
        cp {study} journal-after-run1
        mount -o remount,size=64m {disk}
        $KUBETUNE run {spec} --storage {study} --model-repo {tmp_path}/repo > run2.out 2> run2.err
        echo RC2=$?
        ls {disk}/runs/full > run-folder.txt
        """,
        tmp_path,
    )
    err1 = (tmp_path / "run1.err").read_text()
    assert out["RC1"] == "2", err1
    lines = [line for line in err1.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "no space left on the device" in lines[0], err1
    assert "Traceback" not in err1 + (tmp_path / "run1.out").read_text()
    storage = journal_storage(tmp_path / "journal-after-run1")
    before = optuna.load_study(study_name="full", storage=storage).trials
    assert [t.state for t in before] == [TrialState.COMPLETE] * 4  # the study is intact

    err2 = (tmp_path / "run2.err").read_text()
    assert out["RC2"] == "0", err2
    assert "resuming: 4 done" in err2
    after = optuna.load_study(study_name="full", storage=journal_storage(study)).trials
    assert [(t.number, t.value) for t in after] == [(t.number, t.value) for t in before]
    assert "summary.json" in (tmp_path / "run-folder.txt").read_text()
    repo = open_repository(tmp_path / "repo")
    production = repo.aliases("full")["production"]
    repo.pull("full", production, tmp_path / "pulled")  # whole and verified
