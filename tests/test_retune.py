"""Recurring re-tuning in the steps: stop early on the champion's data, a study per data
version warm-started from earlier runs (the study, else the repository's manifests), and
the provenance recorded in the pushed manifest. The end-to-end test runs ``kubetune run``
three times on a local repository (no simulated service involved)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from kubetune.cli.main import main
from kubetune.core.run_context import RunContext
from kubetune.core.spec import ExperimentSpec, load_spec
from kubetune.repository import PRODUCTION, ModelRepository, open_repository
from kubetune.steps.retrieve import retrieve
from kubetune.steps.retune import Provenance, manifest_candidates, plan_retune
from kubetune.steps.run import DATA_UNCHANGED, run_experiment
from kubetune.steps.search import normalize_objective

SPEC = {
    "name": "iris-retune",
    "objective": {"metric": "accuracy"},
    "data": {"source": "rows.csv", "target": "target"},
    "trainer": {"kind": "sklearn", "estimator": "sklearn.tree.DecisionTreeClassifier"},
    "search_space": {
        "max_depth": {"type": "int", "low": 1, "high": 6},
        "min_samples_leaf": {"type": "int", "low": 1, "high": 20},
    },
    "strategy": {"name": "tpe"},
    "limits": {"max_trials": 4, "parallel": 1},
    "retune": {"warm_start": 2},
}


def _write_data(folder: Path, extra_rows: int = 0) -> None:
    import pandas as pd
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    if extra_rows:  # "new data arrived": a few more (slightly shifted) rows
        more = frame.sample(extra_rows, random_state=1).copy()
        more.iloc[:, 0] += 0.05
        frame = pd.concat([frame, more], ignore_index=True)
    frame.to_csv(folder / "rows.csv", index=False)


def _spec(folder: Path, **changes: Any) -> ExperimentSpec:
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump({**SPEC, **changes}))
    return normalize_objective(load_spec(path))


def _push(repo: ModelRepository, tmp_path: Path, fingerprint: str, params: dict, value: float):
    model = tmp_path / "fake-model"
    model.mkdir(exist_ok=True)
    (model / "model.bin").write_bytes(b"not a real model")
    return repo.push(
        "iris-retune",
        model,
        params=params,
        metrics={"val_accuracy": value, "test_accuracy": value},
        data_fingerprint=fingerprint,
        study="iris-retune",
        trainer="sklearn",
        alias=PRODUCTION,
    )


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ExperimentSpec, Any]:
    monkeypatch.chdir(tmp_path)
    _write_data(tmp_path)
    spec = _spec(tmp_path)
    return spec, retrieve(spec)


def test_unchanged_data_stops_before_searching_and_pushes_nothing(
    tmp_path: Path, setup: tuple[ExperimentSpec, Any]
) -> None:
    spec, data = setup
    repo = open_repository(tmp_path / "repo")
    _push(repo, tmp_path, data.fingerprint, {"max_depth": 3, "min_samples_leaf": 2}, 0.9)
    console = Console(stderr=True, record=True)
    summary = run_experiment(spec, model_repo=str(tmp_path / "repo"), console=console)
    assert summary.skipped is not None and summary.stop_kind == DATA_UNCHANGED
    assert summary.skipped.startswith(
        f"data unchanged since production v1 (fingerprint {data.fingerprint[:12]})"
    )
    assert "--force" in summary.skipped
    assert [m.version for m in repo.versions("iris-retune")] == [1]
    context = RunContext.from_spec(spec)
    written = json.loads(context.summary_path.read_text())
    assert written["skipped"] == summary.skipped and written["completed"] == 0
    assert not context.report_path.exists()  # no study was opened, no trial ran
    assert not (context.run_dir / "study.journal").exists()


def test_when_the_run_searches_and_in_which_study(
    tmp_path: Path, setup: tuple[ExperimentSpec, Any]
) -> None:
    spec, data = setup
    repo = open_repository(tmp_path / "repo")
    context = RunContext.from_spec(spec)
    assert plan_retune(spec, data, repo, context).skip is None  # no champion yet

    _push(repo, tmp_path, data.fingerprint, {"max_depth": 3}, 0.9)
    assert plan_retune(spec, data, repo, context).skip is not None
    forced = plan_retune(spec, data, repo, context, force=True)
    assert forced.skip is None
    assert forced.context.study_name == f"iris-retune.{data.fingerprint[:12]}"
    assert forced.context.trials_dir == context.run_dir / "trials" / forced.context.study_name
    assert forced.context.study_storage == context.study_storage  # earlier studies are there
    no_skip = _spec(tmp_path, retune={"skip_unchanged_data": False})
    assert plan_retune(no_skip, data, repo, context).skip is None

    _push(repo, tmp_path, "another-fingerprint", {"max_depth": 3}, 0.9)  # data changed since
    assert plan_retune(spec, data, repo, context).skip is None


def test_the_repository_configs_are_ranked_by_the_searched_metric(
    tmp_path: Path, setup: tuple[ExperimentSpec, Any]
) -> None:
    spec, data = setup
    repo = open_repository(tmp_path / "repo")
    _push(repo, tmp_path, "a", {"max_depth": 2, "min_samples_leaf": 5}, 0.80)
    _push(repo, tmp_path, "b", {"max_depth": 4, "min_samples_leaf": 3}, 0.95)
    _push(repo, tmp_path, "c", {"max_depth": 3, "min_samples_leaf": 9}, 0.90)
    ranked = manifest_candidates(repo, spec)
    assert [(c.source, c.value) for c in ranked] == [
        ("iris-retune v2", 0.95),
        ("iris-retune v3", 0.90),
        ("iris-retune v1", 0.80),
    ]
    assert ranked[0].params == {"max_depth": 4, "min_samples_leaf": 3}
    plan = plan_retune(spec, data, repo, RunContext.from_spec(spec))
    assert plan.warm_start == 2 and plan.fallback == ranked


def test_provenance_comes_from_options_else_the_environment(
    setup: tuple[ExperimentSpec, Any],
) -> None:
    spec, data = setup
    env = {"KFP_RUN_ID": "kfp-run-7", "KUBETUNE_SCHEDULE": "nightly"}
    assert Provenance.resolve(environ=env).run_id == "kfp-run-7"
    assert Provenance.resolve(environ={**env, "KUBETUNE_RUN_ID": "mine"}).run_id == "mine"
    given = Provenance.resolve(run_id="cli-1", schedule="weekly", environ=env)
    assert (given.run_id, given.schedule) == ("cli-1", "weekly")
    assert Provenance.resolve(environ={}).run_id is None
    record = given.record(spec, data, study="iris-retune.x", warm_started=2)
    assert record["data"]["fingerprint"] == data.fingerprint
    assert record["data"]["source"] == "rows.csv"
    assert record["data"]["rows"]["train"] == len(data.X_train)
    assert record["study"] == "iris-retune.x" and record["warm_started"] == 2


@pytest.mark.slow
def test_recurring_runs_learn_from_earlier_runs_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three scheduled runs: a first tuning; the same data again (stops early); new data
    (warm-started from the first run's study, pushed with its provenance)."""
    monkeypatch.chdir(tmp_path)
    _write_data(tmp_path)
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(SPEC))
    monkeypatch.setenv("KFP_RUN_ID", "run-1")
    run = ["run", str(spec_path), "--model-repo", "repo", "--schedule", "nightly"]
    assert main([*run, "--output", "json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["promoted"] is True and first["warm_started"] == 0  # nothing to learn from

    monkeypatch.setenv("KFP_RUN_ID", "run-2")
    assert main(run) == 0
    out = capsys.readouterr().out
    assert out.startswith("data unchanged since production v1")
    repo = open_repository(tmp_path / "repo")
    assert [m.version for m in repo.versions("iris-retune")] == [1]

    _write_data(tmp_path, extra_rows=30)
    monkeypatch.setenv("KFP_RUN_ID", "run-3")
    assert main([*run, "--output", "json"]) == 0
    captured = capsys.readouterr()
    third = json.loads(captured.out)
    assert third["warm_started"] == 2
    assert "warm start: the first 2 trials ran the best configs of earlier runs" in captured.err
    assert third["study"] != first["study"]
    manifest = repo.get("iris-retune", third["model_version"])
    provenance = manifest.extra["provenance"]
    assert provenance["run_id"] == "run-3" and provenance["schedule"] == "nightly"
    assert provenance["data"]["fingerprint"] == manifest.data_fingerprint
    assert provenance["study"] == third["study"] and provenance["warm_started"] == 2
    assert repo.get("iris-retune", 1).extra["provenance"]["run_id"] == "run-1"
    # the promotion went through the champion gate (re-scored on the new data)
    assert third["promoted"] == (repo.resolve("iris-retune", PRODUCTION) == 2)

    # --force re-tunes the same data again (its study is complete: the best is retrained)
    assert main([*run, "--force", "--output", "json"]) == 0
    forced = json.loads(capsys.readouterr().out)
    assert forced["model_version"] == 3 and forced["skipped"] is None


def test_models_show_prints_the_provenance_one_line_each(
    tmp_path: Path, setup: tuple[ExperimentSpec, Any]
) -> None:
    from kubetune.repository.cli_views import render_model_show

    spec, data = setup
    repo = open_repository(tmp_path / "repo")
    record = Provenance(run_id="run-9", schedule="nightly").record(
        spec, data, study="iris-retune.x", warm_started=2
    )
    model = tmp_path / "m"
    model.mkdir()
    (model / "model.bin").write_bytes(b"x")
    repo.push(
        "iris-retune",
        model,
        params={},
        metrics={},
        data_fingerprint=data.fingerprint,
        study="s",
        trainer="sklearn",
        extra={"provenance": record},
    )
    lines = render_model_show(repo, "iris-retune", 1).splitlines()
    assert any(line.split() == ["provenance.run_id", "run-9"] for line in lines)
    assert any(
        line.split() == ["provenance.data.rows.train", str(len(data.X_train))] for line in lines
    )
