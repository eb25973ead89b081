"""The trial artifact store: optuna's artifact protocol and trial checkpoints on any object
store. ``ArtifactConformance`` runs on a local folder here and on simulated S3 (moto
server) in ``test_s3.py``."""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import cloudpickle
import optuna
import pytest
from optuna.artifacts import download_artifact, get_all_artifact_meta, upload_artifact
from optuna.artifacts.exceptions import ArtifactNotFound

from kubetune.artifacts import (
    CHECKPOINT_NAME,
    ObjectArtifactStore,
    TrialArtifacts,
    trial_artifacts,
)
from kubetune.core.trial import TrialRequest
from kubetune.errors import StorageError
from kubetune.storage import LocalObjectStore, ObjectStore, open_store
from kubetune.testing.storage import StoreFactory

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # trial fns run in workers
optuna.logging.set_verbosity(optuna.logging.WARNING)


def _write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


class ArtifactConformance:
    """Artifact behaviour every object store must support. Subclasses give ``store_factory``."""

    @pytest.fixture
    def store(self, store_factory: StoreFactory) -> ObjectStore:
        return store_factory()

    # -- optuna's artifact-store protocol --------------------------------------------------

    def test_optuna_upload_download_round_trip(self, store: ObjectStore, tmp_path: Path) -> None:
        study = optuna.create_study(study_name="exp")
        trial = study.ask()
        source = tmp_path / "weights.bin"
        source.write_bytes(os.urandom(3 * 1024 * 1024 + 5))  # several chunks
        scoped = TrialArtifacts(store, "exp", trial.number).optuna_store()
        artifact_id = upload_artifact(
            artifact_store=scoped, file_path=str(source), study_or_trial=trial
        )
        # The content lives in the trial's folder...
        assert f"studies/exp/trials/{trial.number}/optuna/{artifact_id}" in store.list()
        # ...and a store on the same root that knows only the id (optuna-dashboard) reads it.
        reader = ObjectArtifactStore(store)
        dest = tmp_path / "back.bin"
        download_artifact(artifact_store=reader, artifact_id=artifact_id, file_path=str(dest))
        assert dest.read_bytes() == source.read_bytes()
        metas = get_all_artifact_meta(study.trials[0], storage=study._storage)
        assert [m.artifact_id for m in metas] == [artifact_id]
        assert metas[0].filename == "weights.bin"

    def test_open_write_remove_semantics(self, store: ObjectStore) -> None:
        import io

        artifacts = ObjectArtifactStore(store)
        with pytest.raises(ArtifactNotFound):
            artifacts.open_reader("0000-missing")
        with pytest.raises(ArtifactNotFound):
            artifacts.remove("0000-missing")
        artifacts.write("a-1", io.BytesIO(b"first"))
        artifacts.write("a-1", io.BytesIO(b"second"))  # a write replaces, like a file
        with artifacts.open_reader("a-1") as reader:
            assert reader.read() == b"second"
        scoped = TrialArtifacts(store, "exp", 4).optuna_store()
        scoped.write("b-2", io.BytesIO(b"trial"))
        with artifacts.open_reader("b-2") as reader:
            assert reader.read() == b"trial"
        artifacts.remove("b-2")
        with pytest.raises(ArtifactNotFound):
            scoped.open_reader("b-2")
        assert not [k for k in store.list() if "b-2" in k]  # index and content are gone
        for bad in ("../escape", "a/b", "", ".kt-tmp-x"):
            with pytest.raises(ValueError, match="invalid artifact_id"):
                artifacts.write(bad, io.BytesIO(b"x"))

    # -- checkpoints -----------------------------------------------------------------------

    def test_checkpoint_folder_round_trip_and_replacement(
        self, store: ObjectStore, tmp_path: Path
    ) -> None:
        trial = TrialArtifacts(store, "exp", 3)
        assert trial.checkpoint() is None
        assert trial.load_checkpoint(tmp_path / "none") is None
        first = _write_tree(tmp_path / "ck1", {"model.pt": b"w1" * 1000, "opt/state.json": b"{}"})
        record = trial.save_checkpoint(first, step=1)
        assert (record.seq, record.step) == (1, 1)
        second = _write_tree(tmp_path / "ck2", {"model.pt": b"w2" * 1000})
        trial.save_checkpoint(second, step=2)
        dest = tmp_path / "restored"
        assert trial.load_checkpoint(dest) == dest
        assert _tree(dest) == {"model.pt": b"w2" * 1000}  # the latest, and only it
        assert trial.checkpoint().step == 2  # type: ignore[union-attr]
        keys = store.list("studies/exp/trials/3/")
        assert keys == [
            f"studies/exp/trials/3/{CHECKPOINT_NAME}",
            "studies/exp/trials/3/checkpoints/000002/model.pt",
        ]  # the older checkpoint's files were deleted

    def test_single_file_checkpoint(self, store: ObjectStore, tmp_path: Path) -> None:
        source = tmp_path / "state.safetensors"
        source.write_bytes(b"tensor-bytes")
        trial = TrialArtifacts(store, "exp", 0)
        trial.save_checkpoint(source, step=5)
        path = trial.load_checkpoint(tmp_path / "out")
        assert path == tmp_path / "out" / "state.safetensors"
        assert path.read_bytes() == b"tensor-bytes"

    def test_tampered_checkpoint_is_refused(self, store: ObjectStore, tmp_path: Path) -> None:
        trial = TrialArtifacts(store, "exp", 1)
        trial.save_checkpoint(_write_tree(tmp_path / "ck", {"a.bin": b"good", "b.bin": b"x"}))
        store.put_bytes("studies/exp/trials/1/checkpoints/000001/b.bin", b"evil")
        dest = tmp_path / "dest"
        with pytest.raises(StorageError, match=r"b\.bin fails verification"):
            trial.load_checkpoint(dest)
        assert _tree(dest) == {}  # nothing unverified reached the destination
        store.delete("studies/exp/trials/1/checkpoints/000001/b.bin")
        with pytest.raises(StorageError, match=r"b\.bin is missing"):
            trial.load_checkpoint(dest)

    def test_files_and_other_trials(self, store: ObjectStore, tmp_path: Path) -> None:
        (tmp_path / "curve.csv").write_text("1,0.5\n")
        first = TrialArtifacts(store, "exp", 7)
        uri = first.save_file("plots/curve.csv", tmp_path / "curve.csv")
        assert uri == store.uri("studies/exp/trials/7/files/plots/curve.csv")
        first.save_checkpoint(_write_tree(tmp_path / "ck", {"w": b"seven"}), step=3)
        later = TrialArtifacts(store, "exp", 12)
        assert later.files() == []
        # A promoted config (or a PBT member) starts from another trial's checkpoint.
        restored = later.for_trial(7).load_checkpoint(tmp_path / "from7")
        assert restored is not None and (restored / "w").read_bytes() == b"seven"
        later.for_trial(7).load_file("plots/curve.csv", tmp_path / "c.csv")
        assert (tmp_path / "c.csv").read_text() == "1,0.5\n"
        assert first.files() == ["plots/curve.csv"]
        with pytest.raises(StorageError, match="invalid artifact name"):
            first.save_file("../x", tmp_path / "curve.csv")
        with pytest.raises(StorageError, match="study name"):
            TrialArtifacts(store, "a/b", 1)


class TestArtifactsOnLocalFolder(ArtifactConformance):
    @pytest.fixture
    def store_factory(self, tmp_path: Path) -> StoreFactory:
        return functools.partial(LocalObjectStore, tmp_path / "artifacts")


# -- the request carries the store -----------------------------------------------------------


def test_retry_shares_the_first_attempts_folder(tmp_path: Path) -> None:
    uri = (tmp_path / "arts").as_uri()
    first = TrialRequest(study="exp", number=4, params={}, seed=0, artifacts=uri)
    retry = TrialRequest(study="exp", number=9, params={}, seed=0, artifacts=uri, retry_of=4)
    assert trial_artifacts(first).uri == trial_artifacts(retry).uri
    assert trial_artifacts(retry).uri.endswith("/arts/studies/exp/trials/4/")
    again = TrialRequest.from_dict(json.loads(json.dumps(retry.to_dict())))
    assert (again.artifacts, again.retry_of) == (uri, 4)
    bare = TrialRequest(study="exp", number=1, params={}, seed=0)
    assert "artifacts" not in bare.to_dict() and "retry_of" not in bare.to_dict()
    with pytest.raises(StorageError, match="no artifact store"):
        trial_artifacts(bare)


def _checkpointing_trial(request: TrialRequest, reporter: Any) -> dict[str, float]:
    """Saves a checkpoint, then dies on its first attempt; the retry resumes from it."""
    artifacts = trial_artifacts(request)
    scratch = Path(request.output_dir or ".") / f"scratch-{request.number}"
    restored = artifacts.load_checkpoint(scratch / "in")
    if restored is None:
        state = scratch / "state.json"
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text(json.dumps({"epoch": 3, "pid": os.getpid()}))
        artifacts.save_checkpoint(state, step=3)
        os.kill(os.getpid(), signal.SIGKILL)  # an infrastructure failure: retried
    resumed = json.loads(restored.read_text())  # type: ignore[union-attr]
    return {"value": float(resumed["epoch"]), "resumed_from_pid": float(resumed["pid"])}


@pytest.mark.slow
def test_a_retried_trial_resumes_from_the_checkpoint_its_first_attempt_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the real loop and local worker processes: attempt 1 saves and is killed,
    attempt 2 (a new trial number) loads what attempt 1 saved."""
    from kubetune.core.attrs import RETRY_OF
    from kubetune.core.run_context import RunContext
    from kubetune.core.search import run_search
    from kubetune.core.spec import parse_spec
    from kubetune.executors import create_executor

    monkeypatch.chdir(tmp_path)
    spec = parse_spec(
        {
            "name": "ckpt",
            "objective": {"metric": "value", "direction": "maximize"},
            "search_space": {"x": {"type": "float", "low": 0, "high": 1}},
            "limits": {"max_trials": 1, "retries": 1},
            "artifacts": "shared-artifacts",
        }
    )
    ctx = RunContext.from_spec(spec)
    assert ctx.artifacts == (tmp_path / "shared-artifacts").as_uri()
    with create_executor(spec, trial_fn=_checkpointing_trial, work_dir=ctx.trials_dir) as ex:
        result = run_search(spec, ex, context=ctx, output_dir=str(ctx.trials_dir))
    trials = result.study.trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert trials[1].user_attrs[RETRY_OF] == 0
    assert result.best_value == 3.0
    metrics = trials[1].user_attrs["metrics"]
    assert metrics["resumed_from_pid"] != 0
    stored = open_store(ctx.artifacts).list()
    assert stored[0] == "studies/ckpt/trials/0/checkpoint.json"  # the first attempt's folder


def test_artifacts_location_from_flag_spec_and_default(tmp_path: Path) -> None:
    from kubetune.core.run_context import RunContext
    from kubetune.core.spec import parse_spec

    base = {
        "name": "loc",
        "objective": {"metric": "value", "direction": "maximize"},
        "search_space": {"x": {"type": "float", "low": 0, "high": 1}},
    }
    spec = parse_spec(base)
    default = RunContext.from_spec(spec, base_dir=tmp_path)
    assert default.artifacts == (tmp_path / "kubetune-runs" / "loc" / "artifacts").as_uri()
    spec = parse_spec({**base, "artifacts": "s3://bucket/arts"})
    assert RunContext.from_spec(spec, base_dir=tmp_path).artifacts == "s3://bucket/arts"
    flag = RunContext.from_spec(spec, base_dir=tmp_path, artifacts="mine")
    assert flag.artifacts == (tmp_path / "mine").as_uri()


def test_run_takes_the_artifacts_flag_then_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``kubetune run --artifacts`` beats ``KUBETUNE_ARTIFACTS``, which beats the spec."""
    import kubetune.steps.run
    from kubetune.cli.main import main
    from kubetune.errors import KubetuneError

    seen: list[str | None] = []

    def fake_run(spec: Any, **kwargs: Any) -> Any:
        seen.append(kwargs["artifacts"])
        raise KubetuneError("stopped by the test")

    monkeypatch.setattr(kubetune.steps.run, "run_experiment", fake_run)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: flags\nobjective: {metric: value, direction: maximize}\n"
        "search_space: {x: {type: float, low: 0, high: 1}}\n"
    )
    monkeypatch.setenv("KUBETUNE_ARTIFACTS", "s3://from-env/arts")
    assert main(["run", str(spec), "--artifacts", "s3://from-flag/arts"]) == 2
    assert main(["run", str(spec)]) == 2
    monkeypatch.delenv("KUBETUNE_ARTIFACTS")
    assert main(["run", str(spec)]) == 2
    assert seen == ["s3://from-flag/arts", "s3://from-env/arts", None]
    assert "stopped by the test" in capsys.readouterr().err
