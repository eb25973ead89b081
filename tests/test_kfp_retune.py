"""Recurring re-tuning in the pipelines, as plain Python: the ``retune`` task's decision,
the looping form's warm start in its first ``suggest``, and the provenance ``push``
records. KFP artifacts are stood in for by ``FakeArtifact``; the study is a journal file
in a temporary folder and the model repository a local folder (no cluster, no KFP)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from kubetune.core.attrs import WARM_START
from kubetune.core.storage import open_storage
from kubetune.core.warm_start import study_family
from kubetune.kfp import tasks
from kubetune.repository import PRODUCTION, open_repository
from kubetune.steps.pipeline_io import DataRef, resolve_spec, run_context
from kubetune.steps.pipeline_retune import GO, SKIP, WarmStart, kfp_provenance

SPEC: dict[str, Any] = {
    "name": "iris-kretune",
    "objective": {"metric": "accuracy"},
    "data": {"source": "rows.csv", "target": "target"},
    "trainer": {"kind": "sklearn", "estimator": "sklearn.tree.DecisionTreeClassifier"},
    "search_space": {
        "max_depth": {"type": "int", "low": 1, "high": 6},
        "min_samples_leaf": {"type": "int", "low": 1, "high": 20},
    },
    "strategy": {"name": "random"},
    "limits": {"max_trials": 3, "parallel": 1},
    "seed": 1,
    "retune": {"warm_start": 2},
}


class FakeArtifact:
    """What kfp hands a component for an artifact (``Metrics`` adds ``log_metric``)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.metadata: dict[str, Any] = {}

    def log_metric(self, name: str, value: float) -> None:
        self.metadata[name] = value


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KUBETUNE_STORAGE", str(tmp_path / "study.journal"))
    for name in ("KFP_RUN_ID", "KUBETUNE_RUN_ID", "KUBETUNE_SCHEDULE"):
        monkeypatch.delenv(name, raising=False)
    _write_data(tmp_path)
    return tmp_path


def _write_data(folder: Path, extra_rows: int = 0) -> None:
    import pandas as pd
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    if extra_rows:  # new data arrived
        frame = pd.concat([frame, frame.sample(extra_rows, random_state=1)], ignore_index=True)
    frame.to_csv(folder / "rows.csv", index=False)


def _retrieve(workdir: Path, name: str) -> tuple[str, FakeArtifact]:
    dataset = FakeArtifact(workdir / name)
    return tasks.retrieve(yaml.safe_dump(SPEC), "", 0, "", dataset), dataset


def _champion(workdir: Path, fingerprint: str, params: dict[str, Any]) -> None:
    """A production version trained on data ``fingerprint`` (the model files are a stand-in:
    the decision reads only the manifest)."""
    model = workdir / "fake-model"
    model.mkdir(exist_ok=True)
    (model / "model.bin").write_bytes(b"not a real model")
    open_repository(str(workdir / "repo")).push(
        SPEC["name"],
        model,
        params=params,
        metrics={"val_accuracy": 0.9, "test_accuracy": 0.9},
        data_fingerprint=fingerprint,
        study=SPEC["name"],
        trainer="sklearn",
        alias=PRODUCTION,
    )


def _retune(workdir: Path, run_spec: str, dataset: FakeArtifact, *, force: bool = False):
    report = FakeArtifact(workdir / "retune.md")
    decision, reason, warm = tasks.retune(run_spec, str(workdir / "repo"), force, dataset, report)
    assert reason in Path(report.path).read_text()
    return decision, WarmStart.from_json(warm), report


def test_a_run_on_the_champions_data_stops_and_says_why_unless_forced(workdir: Path) -> None:
    run_spec, dataset = _retrieve(workdir, "dataset")
    fingerprint = DataRef.read(dataset.path).fingerprint
    decision, _, _ = _retune(workdir, run_spec, dataset)
    assert decision == GO  # no champion yet

    _champion(workdir, fingerprint, {"max_depth": 3, "min_samples_leaf": 2})
    decision, warm, report = _retune(workdir, run_spec, dataset)
    assert decision == SKIP and warm.count == 0
    text = Path(report.path).read_text()
    assert "stopped early" in text and "data unchanged since production v1" in text
    assert report.metadata["decision"] == SKIP
    summary = json.loads((workdir / "kubetune-runs" / SPEC["name"] / "summary.json").read_text())
    assert summary["skipped"].startswith("data unchanged") and summary["model_version"] is None
    shown = FakeArtifact(workdir / "skipped.md")  # the Else branch's task
    tasks.skipped(summary["skipped"], shown)
    assert summary["skipped"] in Path(shown.path).read_text()

    decision, warm, report = _retune(workdir, run_spec, dataset, force=True)
    assert decision == GO and "forced" in Path(report.path).read_text()
    assert warm.count == 2 and warm.fallback[0].params["max_depth"] == 3


def test_a_spec_without_retune_always_goes(workdir: Path) -> None:
    plain = {k: v for k, v in SPEC.items() if k != "retune"}
    dataset = FakeArtifact(workdir / "dataset")
    run_spec = tasks.retrieve(yaml.safe_dump(plain), "", 0, "", dataset)
    _champion(workdir, DataRef.read(dataset.path).fingerprint, {"max_depth": 3})
    decision, warm, _ = _retune(workdir, run_spec, dataset)
    assert (decision, warm) == (GO, WarmStart())
    assert run_context(resolve_spec(run_spec), data_fingerprint="abc").study_name == plain["name"]


def test_the_first_suggest_of_new_data_queues_the_warm_start_once(workdir: Path) -> None:
    """New data (a changed fingerprint): the study of that data version starts with the
    champion's config, queued by round 1's suggest; a retried suggest queues nothing more."""
    _, old = _retrieve(workdir, "old")
    champion = {"max_depth": 4, "min_samples_leaf": 7}
    _champion(workdir, DataRef.read(old.path).fingerprint, champion)
    _write_data(workdir, extra_rows=12)
    run_spec, dataset = _retrieve(workdir, "new")
    decision, warm, _ = _retune(workdir, run_spec, dataset)
    assert decision == GO and warm.count == 2

    warm_json = warm.to_json()
    first = tasks.suggest(run_spec, "run-1", 0, dataset, warm_json)
    assert json.loads(first[0])["params"] == champion
    assert tasks.suggest(run_spec, "run-1", 0, dataset, warm_json) == first  # retried
    tasks.suggest(run_spec, "run-2", 0, dataset, warm_json)  # a study with trials: no more

    fingerprint = DataRef.read(dataset.path).fingerprint
    storage = open_storage(str(workdir / "study.journal"))
    name = study_family(SPEC["name"], fingerprint)
    study = optuna.load_study(study_name=name, storage=storage)
    marks = [t.user_attrs.get(WARM_START) for t in study.trials]
    assert marks == ["iris-kretune v1", None]
    assert SPEC["name"] not in {s.study_name for s in storage.get_all_studies()}


def test_kfp_placeholders_a_runner_left_unresolved_count_as_not_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KUBETUNE_RUN_ID", raising=False)
    monkeypatch.setenv("KFP_RUN_ID", "from-env")
    given = kfp_provenance("uuid-1", "nightly-2", "2026-11-23T02:00:00Z")
    assert (given.run_id, given.run_name, given.schedule) == (
        "uuid-1",
        "nightly-2",
        "2026-11-23T02:00:00Z",
    )
    local = kfp_provenance("", "{{$.pipeline_job_name}}", "{{$.pipeline_job_schedule_time_utc}}")
    assert (local.run_id, local.run_name, local.schedule) == ("from-env", None, None)


@pytest.mark.slow  # a search, a training and the HTML report: about 5 s on a loaded machine
def test_the_controller_tasks_search_the_data_versions_study_and_record_provenance(
    workdir: Path,
) -> None:
    _, old = _retrieve(workdir, "old")
    champion = {"max_depth": 5, "min_samples_leaf": 1}
    _champion(workdir, DataRef.read(old.path).fingerprint, champion)
    _write_data(workdir, extra_rows=12)
    run_spec, dataset = _retrieve(workdir, "new")
    decision, warm, _ = _retune(workdir, run_spec, dataset)
    assert decision == GO

    result = tasks.search(
        run_spec, str(workdir / "repo"), dataset, FakeArtifact(workdir / "m"), warm.to_json()
    )
    assert json.loads(result)["completed"] == 3
    model = FakeArtifact(workdir / "model")
    tasks.train(run_spec, result, dataset, model)
    test_metrics = tasks.evaluate(run_spec, dataset, model, FakeArtifact(workdir / "e"))
    pushed, report = FakeArtifact(workdir / "pushed"), FakeArtifact(workdir / "report.html")
    summary = json.loads(
        tasks.push(
            run_spec,
            str(workdir / "repo"),
            result,
            test_metrics,
            dataset,
            model,
            pushed,
            report,
            "uuid-7",
            "retune-nightly-7",
            "2026-11-23T02:00:00Z",
        )
    )
    fingerprint = DataRef.read(dataset.path).fingerprint
    assert summary["study"] == study_family(SPEC["name"], fingerprint)
    assert summary["warm_started"] == 1  # the champion's config (no earlier study)
    manifest = open_repository(str(workdir / "repo")).get(SPEC["name"], summary["model_version"])
    provenance = manifest.extra["provenance"]
    assert provenance["run_id"] == "uuid-7" and provenance["run_name"] == "retune-nightly-7"
    assert provenance["schedule"] == "2026-11-23T02:00:00Z"
    assert provenance["data"]["fingerprint"] == fingerprint == manifest.data_fingerprint
    assert provenance["data"]["rows"]["train"] + provenance["data"]["rows"]["test"] > 0
    assert provenance["study"] == summary["study"] and provenance["warm_started"] == 1
