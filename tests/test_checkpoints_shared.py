"""Checkpoints through the trial artifact store, so trials in other processes (pods) start
from each other's weights: evolution's weight inheritance and pbt on the subprocess
executor, with the artifact store on simulated S3 (moto's S3 server on a loopback port,
reached through the real minio client) or a local folder.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from kubetune.artifacts import TrialArtifacts
from kubetune.core.attrs import METRICS, PARENT, PBT
from kubetune.core.run_context import RunContext
from kubetune.core.spec import parse_spec
from kubetune.core.trial import TrialRequest
from kubetune.steps.retrieve import retrieve
from kubetune.steps.search import search
from kubetune.steps.trial import INHERITED_FROM
from kubetune.storage import open_store
from kubetune.trainers.base import TrainedModel
from kubetune.trainers.checkpoints import ArtifactCheckpoints, LocalCheckpoints, checkpoints_for
from kubetune.trainers.torch_mlp import TorchMLPTrainer
from test_s3 import bucket, moto_server, s3_env  # noqa: F401  (simulated S3 fixtures)

cloudpickle.register_pickle_by_value(sys.modules[__name__])

DIGITS = {
    "objective": {"metric": "val_accuracy", "direction": "maximize"},
    "data": {"source": "sklearn:digits"},
    "executor": {"kind": "subprocess"},
    "seed": 0,
}
SPACE = {
    "n_layers": 1,
    "units": 16,
    "lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True},
}


class Quiet:
    def report(self, step: int, value: float) -> None:
        return None


def test_the_request_artifact_store_wins_over_the_output_folder(tmp_path: Path) -> None:
    request = TrialRequest(
        study="s",
        number=3,
        params={},
        seed=0,
        output_dir=str(tmp_path / "trials"),
        artifacts=str(tmp_path / "artifacts"),
    )
    store = checkpoints_for(request)
    assert isinstance(store, ArtifactCheckpoints)
    assert store.artifacts.uri.endswith("/studies/s/trials/3/")
    local = TrialRequest(study="s", number=3, params={}, seed=0, output_dir=str(tmp_path))
    assert isinstance(checkpoints_for(local), LocalCheckpoints)


@pytest.mark.parametrize("where", ["local folder", "simulated S3"])
def test_a_checkpoint_round_trips_with_its_budget(
    where: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    uri = str(tmp_path / "artifacts")
    if where == "simulated S3":
        uri = f"s3://{request.getfixturevalue('bucket')}/artifacts"
    spec = parse_spec({**DIGITS, "name": "rt", "search_space": {"lr": 0.01}})
    data = retrieve(spec)
    trainer = TorchMLPTrainer()
    params = {"n_layers": 1, "units": 8, "lr": 0.01}
    model = trainer.fit(params, data, budget=2, seed=0, reporter=Quiet(), metric="accuracy")
    store = ArtifactCheckpoints(TrialArtifacts(open_store(uri), "rt", 0))
    assert store.load(7, tmp_path / "none") is None
    store.save(7, model, step=2)
    restored = store.load(7, tmp_path / "dest")
    assert restored is not None and restored.step == 2
    again = trainer.load(restored.path)
    assert (again.predict(data.X_val) == model.predict(data.X_val)).all()


def _run(tmp_path: Path, raw: dict[str, Any], artifacts: str) -> Any:
    spec = parse_spec(raw)
    context = RunContext.from_spec(
        spec, in_memory_study=True, base_dir=tmp_path, artifacts=artifacts
    )
    return search(spec, context=context)


def _saved_trials(uri: str, study: str) -> set[int]:
    store = open_store(uri)
    return {
        int(key.split("/")[3])
        for key in store.list(f"studies/{study}/trials/")
        if key.endswith("/checkpoint.json")
    }


@pytest.mark.slow
def test_evolution_children_in_other_processes_inherit_through_simulated_s3(
    tmp_path: Path,
    bucket: str,  # noqa: F811
) -> None:
    uri = f"s3://{bucket}/artifacts"
    raw = {
        **DIGITS,
        "name": "evo-sub",
        "trainer": {"kind": "torch-mlp", "epochs": 1, "inherit": True},
        "search_space": SPACE,
        "strategy": {"name": "evolution", "population_size": 2, "sample_size": 1},
        "limits": {"max_trials": 4, "parallel": 1},
    }
    result = _run(tmp_path, raw, uri)
    trials = sorted(result.study.trials, key=lambda t: t.number)
    children = [t for t in trials if PARENT in t.user_attrs]
    assert [t.number for t in children] == [2, 3]
    for child in children:  # set only when the parent's checkpoint was downloaded and used
        assert child.user_attrs[METRICS][INHERITED_FROM] == child.user_attrs[PARENT]
    for t in trials[:2]:
        assert INHERITED_FROM not in t.user_attrs[METRICS]
    assert _saved_trials(uri, "evo-sub") == {0, 1, 2, 3}  # on S3, not in a local folder
    assert not (tmp_path / "kubetune-runs" / "evo-sub" / "trials" / "checkpoints").exists()


@pytest.mark.slow
def test_pbt_members_in_other_processes_copy_checkpoints_through_a_local_store(
    tmp_path: Path,
) -> None:
    uri = str(tmp_path / "shared-artifacts")
    raw = {
        **DIGITS,
        "name": "pbt-sub",
        "trainer": {"kind": "torch-mlp", "epochs": 1},
        "search_space": SPACE,
        "strategy": {"name": "pbt", "population_size": 2, "quantile": 0.5},
        "limits": {"max_trials": 4, "parallel": 1},
    }
    result = _run(tmp_path, raw, uri)
    trials = sorted(result.study.trials, key=lambda t: t.number)
    later = trials[2:]
    assert any(t.user_attrs[PBT]["exploited"] is not None for t in later)
    for t in later:  # every member of interval 1 went on from a checkpoint of interval 0
        assert t.user_attrs[METRICS][INHERITED_FROM] == t.user_attrs[PARENT]
        assert t.user_attrs[PARENT] in (0, 1)
    assert _saved_trials(uri, "pbt-sub") == {0, 1, 2, 3}


class _Saved(TrainedModel):
    def predict(self, X: Any) -> Any:
        return X

    def save(self, directory: Path) -> list[Path]:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "w").write_text("weights")
        return [directory / "w"]


def test_a_trial_continues_its_own_checkpoint_only_in_the_looping_pipeline(
    tmp_path: Path,
) -> None:
    from kubetune.steps.starting_point import RESUMED_FROM_STEP, starting_point

    store = ArtifactCheckpoints(TrialArtifacts(open_store(str(tmp_path / "a")), "s", 0))
    store.save(5, _Saved(), step=2)
    request = TrialRequest(study="s", number=5, params={}, seed=0, budget=6)
    trainer = TorchMLPTrainer()
    looping = starting_point(store, trainer, request, tmp_path / "x", continue_own=True)
    assert looping.checkpoint is not None and looping.checkpoint.step == 2
    assert looping.metrics() == {RESUMED_FROM_STEP: 2.0}
    # Elsewhere a leftover of the same number (an earlier study of that name) is ignored.
    assert starting_point(store, trainer, request, tmp_path / "y").checkpoint is None
