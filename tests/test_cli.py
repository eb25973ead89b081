"""The ``kubetune`` command: validate, run end to end, models list/show/pull, resume.

Runs use a tiny digits MLP (2 epochs, a handful of trials, one worker) in a temporary
working directory, so studies, reports and model repositories land there.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest

from conftest import restore_default_sigint
from kubetune.cli.main import main
from kubetune.core.attrs import FAILURE, FIXED_PARAMS
from kubetune.core.lease import StudyLease
from kubetune.core.storage import journal_storage
from kubetune.repository import open_repository

NAME = "tiny-digits"
TINY_SPEC = f"""\
name: {NAME}
objective: {{metric: val_accuracy}}
data: {{source: "sklearn:digits"}}
trainer: {{kind: torch-mlp}}
search_space:
  units: {{type: int, low: 16, high: 32}}
  lr: {{type: float, low: 5.0e-3, high: 3.0e-2, log: true}}
  n_layers: 1
  batch_size: 128
strategy: {{name: tpe}}
fidelity: {{param: epochs, min: 1, max: 2, scheduler: none}}
limits: {{max_trials: 2, parallel: 1}}
seed: 0
"""


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _study_trials(workdir: Path) -> list[optuna.trial.FrozenTrial]:

    journal = workdir / "kubetune-runs" / NAME / "study.journal"
    storage = journal_storage(journal)
    return optuna.load_study(study_name=NAME, storage=storage).get_trials(deepcopy=False)


# --------------------------------------------------------------------------- validate


def test_validate_prints_the_space_and_the_strategy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = TINY_SPEC.replace("metric: val_accuracy", "metric: accuracy")
    spec = _write(tmp_path / "spec.yaml", text)
    assert main(["validate", str(spec)]) == 0
    out = capsys.readouterr().out
    assert f"valid spec for experiment '{NAME}'" in out
    assert "objective: maximize val_accuracy" in out  # the name the trials report
    assert "search space:" in out
    for line in ("units", "int in [16, 32]", "lr", "float in [0.005, 0.03] (log)", "n_layers"):
        assert line in out
    assert "strategy: tpe (chosen in the spec)" in out
    assert "fidelity: epochs from 1 to 2" in out
    # issue 7.18: the stop conditions in the spec's words, not class names
    assert "stops on: 2 finished trials (limits.max_trials)" in out
    assert "configs: infinite (a float without step)" in out


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (("max_trials: 2", "max_trails: 2"), "limits.max_trails: unknown field"),
        (("low: 5.0e-3", "low: -1.0"), "search_space.lr"),
        (("metric: val_accuracy", "metric: test_accuracy"), "objective.metric"),
        (("metric: val_accuracy", "metric: val_acc, direction: maximize"), "objective.metric"),
        (("kind: torch-mlp", "kind: torch-mpl"), "trainer.kind"),
        (("name: tiny-digits", "name: Tiny Digits"), "name:"),
    ],
)
def test_validate_rejects_a_bad_spec_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: tuple[str, str], field: str
) -> None:
    assert change[0] in TINY_SPEC
    spec = _write(tmp_path / "bad.yaml", TINY_SPEC.replace(*change))
    assert main(["validate", str(spec)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ")
    assert field in captured.err
    assert "Traceback" not in captured.err + captured.out


def test_validate_as_a_process(tmp_path: Path) -> None:
    good = _write(tmp_path / "good.yaml", TINY_SPEC)
    bad = _write(tmp_path / "bad.yaml", TINY_SPEC.replace("parallel: 1", "parallel: 0"))
    command = [sys.executable, "-m", "kubetune.cli.main", "validate"]
    ok = subprocess.run([*command, str(good)], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "strategy: tpe" in ok.stdout
    failed = subprocess.run([*command, str(bad)], capture_output=True, text=True, timeout=120)
    assert failed.returncode == 2
    assert "error:" in failed.stderr and "limits.parallel" in failed.stderr
    assert "Traceback" not in failed.stderr


# --------------------------------------------------------------------------- run


@dataclass(frozen=True)
class FinishedRun:
    workdir: Path
    spec: Path
    repo: Path
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FinishedRun]:
    """One real `kubetune run` of the tiny spec; tests read (or copy) what it wrote."""
    workdir = tmp_path_factory.mktemp("run")
    spec = _write(workdir / "specs" / "tiny.yaml", TINY_SPEC)
    cwd = Path.cwd()
    os.chdir(workdir)
    capture = pytest.MonkeyPatch()
    try:
        out, err = io.StringIO(), io.StringIO()
        capture.setattr(sys, "stdout", out)
        capture.setattr(sys, "stderr", err)
        code = main(["run", str(spec), "--model-repo", "repo"])
    finally:
        capture.undo()
        os.chdir(cwd)
    assert code == 0, err.getvalue()
    yield FinishedRun(workdir, spec, workdir / "repo", out.getvalue(), err.getvalue())


def test_run_writes_summary_report_and_model(finished_run: FinishedRun) -> None:
    run_dir = finished_run.workdir / "kubetune-runs" / NAME
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["experiment"] == NAME
    assert summary["metric"] == "val_accuracy"
    assert summary["completed"] + summary["pruned"] + summary["failed"] == 2
    assert summary["completed"] >= 1
    assert set(summary["test_metrics"]) == {"accuracy", "f1", "log_loss", "roc_auc"}
    assert 0.5 < summary["test_metrics"]["accuracy"] <= 1.0
    assert summary["validation_metrics"]["accuracy"] == pytest.approx(summary["best_value"])
    assert summary["model_version"] == 1
    report = Path(summary["report_path"])
    assert report == run_dir / "report.html"
    assert NAME in report.read_text()

    repo = open_repository(finished_run.repo)
    manifest = repo.get(NAME, "production")
    assert manifest.version == 1
    assert manifest.metrics["test_accuracy"] == pytest.approx(summary["test_metrics"]["accuracy"])
    assert manifest.params == summary["best_params"]
    assert {f.path for f in manifest.files} == {
        "model.safetensors",
        "architecture.json",
        "preprocessing.json",
    }
    assert manifest.extra["budget"] == 2  # the final model got the best trial's epochs
    assert "no production model yet" in finished_run.stderr


def test_models_pull_list_and_show(
    finished_run: FinishedRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = str(finished_run.repo)
    dest = tmp_path / "pulled"
    pull = ["models", "--model-repo", repo, "pull", NAME, "production", "--dest", str(dest)]
    assert main(pull) == 0
    assert f"pulled {NAME} v1" in capsys.readouterr().out
    manifest = json.loads((dest / "manifest.json").read_text())
    manifest_hashes = {entry["path"]: entry["sha256"] for entry in manifest["files"]}
    assert set(manifest_hashes) == {"model.safetensors", "architecture.json", "preprocessing.json"}
    for entry in manifest["files"]:
        assert _sha256(dest / entry["path"]) == entry["sha256"]
        assert (dest / entry["path"]).stat().st_size == entry["size"]

    assert main(["models", "--model-repo", repo, "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split() == ["NAME", "VERSIONS", "LATEST", "ALIASES", "UPDATED"]
    assert listing[1].split()[:4] == [NAME, "1", "1", "production=1"]

    assert main(["models", "--model-repo", repo, "list", NAME]) == 0
    versions = capsys.readouterr().out.splitlines()
    assert versions[0].split()[:5] == ["VERSION", "CREATED", "ALIASES", "TRAINER", "STUDY"]
    row = versions[1].split()
    assert row[0] == "1" and row[2:5] == ["production", "torch-mlp", NAME]
    assert "test_accuracy=" in versions[1]

    assert main(["models", "--model-repo", repo, "show", NAME, "production"]) == 0
    shown = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()}
    assert shown["model"] == [NAME]
    assert shown["version"] == ["1"]
    assert shown["aliases"] == ["production"]
    assert shown["test_accuracy"] and shown["units"]  # metrics and params are listed
    assert shown["model.safetensors"][-1] == manifest_hashes["model.safetensors"][:12]


def test_tampered_model_file_fails_pull(
    finished_run: FinishedRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(finished_run.repo, repo)
    weights = repo / NAME / "versions" / "000001" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))

    dest = tmp_path / "pulled"
    code = main(["models", "--model-repo", str(repo), "pull", NAME, "1", "--dest", str(dest)])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "model.safetensors" in err and "verification" in err
    assert not dest.exists()  # nothing half-pulled


def test_run_with_missing_data_file_fails_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _write(
        tmp_path / "spec.yaml",
        TINY_SPEC.replace('source: "sklearn:digits"', "source: data/train.csv, target: label"),
    )
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(spec), "--model-repo", "repo"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ")
    assert str(tmp_path / "data" / "train.csv") in captured.err
    assert "Traceback" not in captured.err
    assert not (tmp_path / "repo").exists()
    assert not (tmp_path / "kubetune-runs" / NAME / "study.journal").exists()


def test_run_with_unusable_model_repository_fails_before_searching(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _write(tmp_path / "spec.yaml", TINY_SPEC)
    (tmp_path / "repo-is-a-file").write_text("not a directory")
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(spec), "--model-repo", "repo-is-a-file"]) == 2
    err = capsys.readouterr().err
    assert "repo-is-a-file" in err and "not a directory" in err
    # Checked up front: no trial ran only to find nowhere to put the model.
    assert not (tmp_path / "kubetune-runs" / NAME / "study.journal").exists()


def test_run_resumes_the_study(
    finished_run: FinishedRun,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    workdir = tmp_path / "resumed"
    shutil.copytree(finished_run.workdir, workdir)
    before = {t.number: (t.params, t.value, t.state) for t in _study_trials(workdir)}
    assert sorted(before) == [0, 1]
    monkeypatch.chdir(workdir)
    spec = str(workdir / "specs" / "tiny.yaml")

    assert main(["run", spec, "--model-repo", "repo", "--max-trials", "3"]) == 0
    assert "resuming: 2 done" in capsys.readouterr().err
    trials = _study_trials(workdir)
    assert [t.number for t in trials] == [0, 1, 2]  # one new trial, numbering continues
    for t in trials[:2]:  # the finished ones were not run again
        assert (t.params, t.value, t.state) == before[t.number]
    summary = json.loads((workdir / "kubetune-runs" / NAME / "summary.json").read_text())
    assert summary["completed"] + summary["pruned"] + summary["failed"] == 3

    # max_trials already reached: no new trial, but the run still trains and pushes
    assert main(["run", spec, "--model-repo", "repo", "--max-trials", "3"]) == 0
    assert "max_trials reached" in capsys.readouterr().err
    assert len(_study_trials(workdir)) == 3
    assert [m.version for m in open_repository(workdir / "repo").versions(NAME)] == [1, 2, 3]


def test_run_refuses_a_study_another_controller_runs(
    finished_run: FinishedRun,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    summary = json.loads(
        (finished_run.workdir / "kubetune-runs" / NAME / "summary.json").read_text()
    )
    assert summary["stop_reason"].startswith("max_trials reached")
    assert summary["stop_kind"] == "max_trials"

    workdir = tmp_path / "leased"
    shutil.copytree(finished_run.workdir, workdir)
    monkeypatch.chdir(workdir)
    journal = workdir / "kubetune-runs" / NAME / "study.journal"
    before = [(t.number, t.state) for t in _study_trials(workdir)]
    holder = StudyLease(optuna.load_study(study_name=NAME, storage=journal_storage(journal)))
    holder.acquire()  # another controller (this process) runs the study
    try:
        spec = str(workdir / "specs" / "tiny.yaml")
        assert main(["run", spec, "--model-repo", "repo", "--max-trials", "4"]) == 2
    finally:
        holder.release()
    err = capsys.readouterr().err
    assert f"error: study '{NAME}' is run by another controller (host " in err
    assert f"pid {os.getpid()}" in err
    assert [(t.number, t.state) for t in _study_trials(workdir)] == before


SLOW_TRAINER = """\
import time

import numpy as np


class Majority:
    def __init__(self, label: int) -> None:
        self.label = label

    def predict(self, X):
        return np.full(len(X), self.label)


def train(params, data, budget, reporter, seed, final):
    for step in range(1, (budget or 1) + 1):
        # long enough that the Ctrl-C below lands while trials run, even on a loaded machine
        time.sleep(1.0)
        if not final:
            reporter.report(step, params["x"])
    return Majority(int(np.bincount(data.y_train).argmax()))
"""

SLOW_SPEC = """\
name: slow
objective: {metric: val_accuracy}
data: {source: "sklearn:iris"}
trainer: {kind: custom, function: "slow_trainer:train"}
search_space:
  x: {type: float, low: 0.0, high: 1.0}
strategy: {name: random}
fidelity: {param: steps, min: 1, max: 3, scheduler: none}
limits: {max_trials: 6, parallel: 2}
"""


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_the_rerun_finishes_the_study(tmp_path: Path) -> None:
    _write(tmp_path / "slow_trainer.py", SLOW_TRAINER)
    spec = _write(tmp_path / "slow.yaml", SLOW_SPEC)
    cmd = [sys.executable, "-m", "kubetune.cli.main", "run", str(spec), "--model-repo", "repo"]
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=restore_default_sigint,
    )
    journal = tmp_path / "kubetune-runs" / "slow" / "study.journal"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until a trial is done and others are running
        time.sleep(0.3)
        if not journal.exists():
            continue
        storage = journal_storage(journal)
        states = [t.state for t in optuna.load_study(study_name="slow", storage=storage).trials]
        if optuna.trial.TrialState.COMPLETE in states and optuna.trial.TrialState.RUNNING in states:
            break
    proc.send_signal(signal.SIGINT)
    storage = journal_storage(journal)
    _, err = proc.communicate(timeout=60)
    text = err.decode()
    assert proc.returncode == 130, text
    assert "interrupted" in text and "Traceback" not in text
    assert not (tmp_path / "repo" / "slow").exists()  # nothing trained or pushed

    trials = optuna.load_study(study_name="slow", storage=storage).trials
    cancelled = [t for t in trials if t.user_attrs.get(FAILURE) == "cancelled"]
    assert cancelled, "trials running at Ctrl-C are recorded as cancelled"
    queued = [t for t in trials if t.state == optuna.trial.TrialState.WAITING]
    assert sorted(str(t.system_attrs[FIXED_PARAMS]) for t in queued) == sorted(
        str(t.params) for t in cancelled
    )

    rerun = subprocess.run(cmd, cwd=tmp_path, capture_output=True, timeout=120, check=False)
    assert rerun.returncode == 0, rerun.stderr.decode()
    trials = optuna.load_study(study_name="slow", storage=storage).trials
    completed = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(completed) == 6
    completed_params = [str(t.params) for t in completed]
    for t in cancelled:  # every cancelled config ran to completion on the re-run
        assert str(t.params) in completed_params
    assert open_repository(tmp_path / "repo").get("slow", "production").version == 1


# --------------------------------------------------------------------------- --output json


def test_validate_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _write(tmp_path / "spec.yaml", TINY_SPEC)
    assert main(["validate", str(spec), "--output", "json"]) == 0
    data = json.loads(capsys.readouterr().out)  # stdout is one JSON document, nothing else
    assert data["valid"] is True and data["experiment"] == NAME
    assert data["objective"] == {"metric": "val_accuracy", "direction": "maximize", "target": None}
    assert data["search_space"]["lr"] == "float in [0.005, 0.03] (log)"
    assert data["configs"] is None  # continuous
    assert data["strategy"] == {"name": "tpe", "reason": "chosen in the spec"}
    assert data["fidelity"]["param"] == "epochs" and data["fidelity"]["scheduler"] == "none"
    assert data["stop_conditions"] == ["MaxTrials"]


def test_validate_json_output_keeps_errors_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _write(tmp_path / "bad.yaml", TINY_SPEC.replace("name: tpe", "name: bayes"))
    assert main(["validate", str(spec), "--output", "json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "strategy.name: unknown strategy 'bayes' (known: auto," in captured.err


def test_models_list_and_show_json_with_the_repo_flag_after_the_subcommand(
    finished_run: FinishedRun, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = str(finished_run.repo)
    assert main(["models", "list", "--model-repo", repo, "--output", "json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in listing["models"]] == [NAME]
    assert listing["models"][0]["latest"] == 1
    assert listing["models"][0]["aliases"] == {"production": 1}

    assert main(["models", "list", NAME, "--output", "json", "--model-repo", repo]) == 0
    versions = json.loads(capsys.readouterr().out)["versions"]
    assert [v["version"] for v in versions] == [1]
    assert versions[0]["aliases"] == ["production"] and versions[0]["trainer"] == "torch-mlp"

    assert (
        main(["models", "show", NAME, "production", "--model-repo", repo, "--output", "json"]) == 0
    )
    shown = json.loads(capsys.readouterr().out)
    assert shown["name"] == NAME and shown["version"] == 1
    assert shown["aliases"] == ["production"]
    assert "test_accuracy" in shown["metrics"] and "units" in shown["params"]
    assert {f["path"] for f in shown["files"]} == {
        "model.safetensors",
        "architecture.json",
        "preprocessing.json",
    }


def test_model_repo_comes_from_the_flag_else_the_environment(
    finished_run: FinishedRun,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./model-repo here
    monkeypatch.setenv("KUBETUNE_MODEL_REPO", str(finished_run.repo))
    assert main(["models", "list", "--output", "json"]) == 0
    assert [m["name"] for m in json.loads(capsys.readouterr().out)["models"]] == [NAME]

    empty = tmp_path / "empty-repo"
    empty.mkdir()
    # before and after the subcommand, the flag wins over the environment
    for argv in (
        ["models", "--model-repo", str(empty), "list", "--output", "json"],
        ["models", "list", "--model-repo", str(empty), "--output", "json"],
    ):
        assert main(argv) == 0
        assert json.loads(capsys.readouterr().out)["models"] == []


# --------------------------------------------------------------------------- run overrides

FAST_SPEC = """\
name: fast-iris
objective: {metric: val_accuracy}
data: {source: "sklearn:iris"}
trainer: {kind: sklearn, estimator: sklearn.tree.DecisionTreeClassifier}
search_space:
  max_depth: {type: int, low: 1, high: 4}
strategy: {name: random}
limits: {max_trials: 5, parallel: 1, timeout: 1h}
storage: spec-study.journal
seed: 0
"""


def test_run_json_summary_with_flag_and_environment_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _write(tmp_path / "fast.yaml", FAST_SPEC)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KUBETUNE_MODEL_REPO", "env-repo")
    monkeypatch.setenv("KUBETUNE_STORAGE", "env-study.journal")
    argv = ["run", str(spec), "--output", "json", "--max-trials", "2", "--storage", "flag.journal"]
    assert main([*argv, "--seed", "3", "--timeout", "10m"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)  # stdout is the summary only
    assert summary["experiment"] == "fast-iris"
    assert summary["completed"] == 2  # --max-trials
    # the version's full URI, so a script can use it from any directory
    assert summary["model_uri"] == (tmp_path / "env-repo/fast-iris/versions/000001").as_uri() + "/"
    assert "fast-iris" in captured.err  # progress went to stderr
    assert (tmp_path / "flag.journal").exists()  # --storage beat KUBETUNE_STORAGE and the spec
    assert not (tmp_path / "env-study.journal").exists()
    assert not (tmp_path / "spec-study.journal").exists()
    assert open_repository(tmp_path / "env-repo").get("fast-iris", "production").version == 1


def test_run_settings_precedence_flag_environment_spec(tmp_path: Path) -> None:
    from kubetune.cli.settings import load_run_spec

    path = str(_write(tmp_path / "fast.yaml", FAST_SPEC))
    env = {"KUBETUNE_STORAGE": "postgresql://db/study"}
    spec = load_run_spec(path, environ={})
    assert (spec.storage, spec.seed, spec.limits.timeout) == ("spec-study.journal", 0, 3600.0)
    assert load_run_spec(path, environ=env).storage == "postgresql://db/study"
    assert load_run_spec(path, environ={"KUBETUNE_STORAGE": ""}).storage == "spec-study.journal"
    spec = load_run_spec(
        path, environ=env, storage="flag.journal", seed=9, limits={"timeout": 30.0}
    )
    assert (spec.storage, spec.seed, spec.limits.timeout) == ("flag.journal", 9, 30.0)
    assert spec.limits.max_trials == 5  # untouched fields stay as in the spec
    assert spec.base_dir == tmp_path  # inputs still resolve next to the spec


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--seed", "-1", "argument --seed: must be >= 0 (got -1)"),
        ("--seed", "one", "argument --seed: 'one' is not an integer"),
        ("--timeout", "5x", "argument --timeout: '5x' is not a duration"),
        ("--output", "yaml", "argument --output: invalid choice: 'yaml'"),
    ],
)
def test_bad_run_flags_are_usage_errors_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str, message: str
) -> None:
    spec = _write(tmp_path / "fast.yaml", FAST_SPEC)
    with pytest.raises(SystemExit) as exit_info:
        main(["run", str(spec), flag, value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_models_show_and_pull_default_to_production(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 7.6: without a ref a deploy script got the newest version, even one the gate
    rejected. The default is production when it exists, and the command says which."""
    repo = open_repository(tmp_path / "repo")
    model = tmp_path / "m"
    model.mkdir()
    for text in ("champion", "rejected"):
        (model / "weights.bin").write_text(text)
        repo.push("clf", model, params={}, metrics={}, data_fingerprint="f", study="s",
                  trainer="sklearn")  # fmt: skip
    uri = str(tmp_path / "repo")
    assert main(["models", "show", "clf", "--model-repo", uri, "--output", "json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["version"] == 2 and "using latest (v2)" in out.err

    repo.set_alias("clf", "production", 1)
    assert main(["models", "show", "clf", "--model-repo", uri, "--output", "json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["version"] == 1 and "using production (v1)" in out.err
    dest = tmp_path / "deployed"
    assert main(["models", "pull", "clf", "--model-repo", uri, "--dest", str(dest)]) == 0
    assert (dest / "weights.bin").read_text() == "champion"
    assert main(["models", "pull", "clf", "2", "--model-repo", uri, "--dest", str(dest / "x")]) == 0
    assert (dest / "x" / "weights.bin").read_text() == "rejected"  # an explicit ref still wins
    parser_help = subprocess.run(
        [sys.executable, "-m", "kubetune", "models", "pull", "--help"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "default: production if it exists" in " ".join(parser_help.split())


def test_a_hand_edited_manifest_is_refused_through_its_alias(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 7.5: metrics edited to 0.99 in a manifest still pulled as "verified"; one
    malformed manifest made `models list` fail for every model."""
    repo = open_repository(tmp_path / "repo")
    model = tmp_path / "m"
    model.mkdir()
    (model / "weights.bin").write_text("w")
    for name in ("good", "clf"):
        repo.push(
            name,
            model,
            params={},
            metrics={"test_accuracy": 0.7},
            data_fingerprint="f",
            study="s",
            trainer="sklearn",
            alias="production",
        )
    manifest = tmp_path / "repo" / "clf" / "versions" / "000001" / "manifest.json"
    manifest.write_text(manifest.read_text().replace("0.7", "0.99"))
    uri = str(tmp_path / "repo")
    dest = tmp_path / "out"
    assert (
        main(["models", "pull", "clf", "production", "--model-repo", uri, "--dest", str(dest)]) == 2
    )
    err = capsys.readouterr().err
    assert "changed after an alias pointed at it" in err and not dest.exists()

    manifest.write_text("{not json")
    assert main(["models", "list", "--model-repo", uri]) == 0
    out = capsys.readouterr().out
    assert "good" in out and "clf" in out and "no readable manifest" in out


def test_every_argument_of_every_subcommand_has_help() -> None:
    """Issue 7.19: `--help` should explain every argument."""
    import argparse

    from kubetune.cli.main import _parser

    missing = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{path} {name}")
            elif not isinstance(action, argparse._HelpAction) and not action.help:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")

    walk(_parser(), "kubetune")
    assert missing == []


@pytest.mark.parametrize(
    ("space", "line"),
    [
        ("{a: [x, y, z], b: {type: int, low: 1, high: 2}}", "configs: 6"),
        (
            "{a: {type: int, low: 0, high: 99}, b: {type: int, low: 0, high: 99},"
            " c: {type: int, low: 0, high: 99}}",
            "configs: more than 100000",
        ),
        ("{a: {type: float, low: 0, high: 1}}", "configs: infinite (a float without step)"),
    ],
)
def test_validate_counts_finite_spaces_as_finite(
    space: str, line: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(f"name: s\nobjective: {{metric: loss}}\nsearch_space: {space}\n")
    assert main(["validate", str(spec)]) == 0
    assert line in capsys.readouterr().out.splitlines()
