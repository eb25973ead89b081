"""The storage layer: the one location parser, the scheme registry, the atomic write,
and the run context that decides where a run's things go.

The object-store contract itself is ``kubetune.testing.storage.ObjectStoreConformance``,
run for the local store in ``test_repository.py``.
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest

import kubetune
from kubetune.core.paths import file_uri_path, local_path, uri_scheme
from kubetune.core.run_context import DEFAULT_MODEL_REPO, RunContext, study_storage_url
from kubetune.core.spec import parse_spec
from kubetune.core.trial import TrialRequest
from kubetune.errors import DataError, RepositoryError, SpecError, StorageError
from kubetune.storage import (
    LocalObjectStore,
    ObjectNotFoundError,
    UnsupportedSchemeError,
    atomic_write_bytes,
    atomic_write_text,
    open_object,
    open_store,
    path_to_uri,
    register_store,
    store_schemes,
    to_uri,
)
from kubetune.storage.atomic import TEMP_PREFIX
from kubetune.storage.uri import split_object_uri

# -- the one parser ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "scheme"),
    [
        ("models", None),
        ("./a/b", None),
        ("/abs/x", None),
        ("~/x", None),
        ("a:b", None),  # a file name with a colon is a path
        ("file:relative", None),  # only file:/abs is the short form
        ("file:///abs", "file"),
        ("FILE://localhost/abs", "file"),
        ("file:/abs", "file"),
        ("s3://bucket/prefix", "s3"),
        ("postgresql+psycopg2://u@h/db", "postgresql+psycopg2"),
    ],
)
def test_uri_scheme(location: str, scheme: str | None) -> None:
    assert uri_scheme(location) == scheme


def test_local_path_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert local_path("runs/x", tmp_path) == tmp_path / "runs/x"
    assert local_path("/abs/x", tmp_path) == Path("/abs/x")
    assert local_path("~/x", tmp_path) == tmp_path / "home" / "x"
    assert local_path(Path("rel"), tmp_path) == tmp_path / "rel"
    assert local_path("file:///abs/with%20space", tmp_path) == Path("/abs/with space")
    # the bug this parser fixes: file://localhost/x used to become the relative "localhost/x"
    assert local_path("file://localhost/abs/x", tmp_path) == Path("/abs/x")
    assert local_path("file:/abs/x", tmp_path) == Path("/abs/x")
    assert local_path("s3://bucket/x", tmp_path) is None


@pytest.mark.parametrize("uri", ["file://relative/dir", "file://otherhost/abs", "s3://b/x"])
def test_file_uri_path_refuses(uri: str) -> None:
    with pytest.raises(StorageError, match="absolute path") as info:
        file_uri_path(uri)
    assert repr(uri) in str(info.value)


def test_spec_paths_use_the_parser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = parse_spec(_spec_data(), base_dir=tmp_path / "specs")
    assert spec.output_path("file://localhost/abs/runs") == Path("/abs/runs")
    assert spec.output_path("runs") == tmp_path / "runs"
    assert spec.resolve_path("file:///abs/d.csv") == Path("/abs/d.csv")
    assert spec.resolve_path("d.csv") == tmp_path / "specs" / "d.csv"
    with pytest.raises(SpecError, match="s3://b/x"):
        spec.output_path("s3://b/x")


def test_core_never_imports_the_storage_package() -> None:
    """The layering rule: core imports no adapter, so the parser lives in core.paths."""
    core = Path(kubetune.__file__).parent / "core"
    offenders = []
    for path in sorted(core.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            offenders += [f"{path.name}: {n}" for n in names if n.startswith("kubetune.storage")]
    assert len(list(core.rglob("*.py"))) > 5  # the scan saw the core package
    assert offenders == []


# -- URIs and the registry --------------------------------------------------------------------


def test_uri_helpers(tmp_path: Path) -> None:
    assert path_to_uri(tmp_path / "a b") == f"file://{tmp_path}/a%20b"
    assert to_uri("repo", tmp_path) == f"file://{tmp_path}/repo"
    assert to_uri("s3://bucket/p", tmp_path) == "s3://bucket/p"
    assert split_object_uri("s3://bucket/dir/data.csv") == ("s3://bucket/dir", "data.csv")
    for bad in ("s3://bucket", "s3://bucket/", "data.csv"):
        with pytest.raises(StorageError, match="does not name an object"):
            split_object_uri(bad)


def test_open_store_local_forms(tmp_path: Path) -> None:
    for location in ("repo", f"file://{tmp_path}/repo", f"file://localhost{tmp_path}/repo"):
        store = open_store(location, base_dir=tmp_path)
        assert isinstance(store, LocalObjectStore)
        assert store.root == tmp_path / "repo"
        assert store.uri("a/b") == f"file://{tmp_path}/repo/a/b"


def test_open_object(tmp_path: Path) -> None:
    open_store(tmp_path / "d").put_bytes("x.csv", b"a,b\n")
    store, key = open_object(f"file://{tmp_path}/d/x.csv")
    assert (store.get_bytes(key), key) == (b"a,b\n", "x.csv")


def test_s3_is_served_and_planned_schemes_are_announced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubetune.storage import registry

    assert registry._STORES["s3"] == "kubetune.storage.s3:S3ObjectStore"
    assert "s3" in store_schemes() and "file" in store_schemes()
    monkeypatch.setattr(registry, "_PLANNED", {"gs": "the GCS support"})
    with pytest.raises(UnsupportedSchemeError) as info:
        open_store("gs://bucket/prefix", base_dir=tmp_path)
    assert str(info.value).startswith("gs:// arrives with the GCS support")
    assert (info.value.scheme, info.value.planned) == ("gs", "the GCS support")
    assert "gs" in store_schemes()


@pytest.mark.parametrize("location", ["gs://bucket/x", "http://host/x"])
def test_unknown_scheme(location: str) -> None:
    with pytest.raises(UnsupportedSchemeError, match="unsupported storage URI") as info:
        open_store(location)
    assert repr(location) in str(info.value) and info.value.planned is None
    assert isinstance(info.value, RepositoryError)  # old callers keep catching it


def test_empty_location() -> None:
    with pytest.raises(StorageError, match="empty"):
        open_store("  ")


def test_register_store_is_lazy_and_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubetune.storage import registry

    monkeypatch.setattr(registry, "_STORES", dict(registry._STORES))
    monkeypatch.setattr(registry, "_PLANNED", dict(registry._PLANNED))
    register_store("s3", "kubetune.storage.local:LocalObjectStore")  # only the lookup matters
    assert "s3" not in registry._PLANNED
    with pytest.raises(StorageError, match="is not a local path"):
        open_store("s3://bucket/x")  # LocalObjectStore.from_uri refuses an s3 URI
    register_store("mem", "kubetune_no_such_module:Store")  # not imported until used
    with pytest.raises(StorageError, match=r"mem:// store is unavailable"):
        open_store("mem://x")
    register_store("bad", "kubetune.storage.uri:to_uri")
    with pytest.raises(StorageError, match="is not an ObjectStore"):
        open_store("bad://x")
    with pytest.raises(ValueError, match=r"package\.module:Class"):
        register_store("x", "no-colon")


class MemStore(LocalObjectStore):
    """A stand-in for a remote store: ``mem:///abs/dir`` is served like a folder."""

    @classmethod
    def from_uri(cls, uri: str, *, base_dir: Path) -> MemStore:
        return cls(Path(uri.removeprefix("mem://")))


def test_data_source_from_a_registered_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A data source with a registered scheme is downloaded through its store; store
    failures reach the caller as DataError, naming the key."""
    from kubetune.data import load_dataset
    from kubetune.storage import registry

    monkeypatch.setattr(registry, "_STORES", dict(registry._STORES))
    register_store("mem", f"{__name__}:MemStore")
    rows = "\n".join(f"{i % 7},{i % 3},{'ab'[i % 2]}" for i in range(60))
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "t.csv").write_text("x1,x2,label\n" + rows + "\n")
    via_store = load_dataset(f"mem://{tmp_path}/d/t.csv", target="label")
    direct = load_dataset(tmp_path / "d" / "t.csv", target="label")
    assert via_store.fingerprint == direct.fingerprint
    assert via_store.name == "t"
    with pytest.raises(DataError, match=r"'x\.csv' not found"):
        load_dataset(f"mem://{tmp_path}/d/x.csv", target="label")


def test_repository_errors_keep_their_class(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubetune.repository import open_repository
    from kubetune.storage import registry

    monkeypatch.setattr(registry, "_PLANNED", {"gs": "the GCS support"})
    with pytest.raises(RepositoryError, match="model repositories arrive with the GCS support"):
        open_repository("gs://bucket/models")
    with pytest.raises(RepositoryError):  # a store error is a RepositoryError, as before
        LocalObjectStore(tmp_path).get_bytes("missing")
    with pytest.raises(ObjectNotFoundError):
        LocalObjectStore(tmp_path).get_bytes("missing")


# -- the atomic write -------------------------------------------------------------------------


def test_atomic_write_creates_parents_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "out.json"
    atomic_write_text(target, json.dumps({"a": 1}))
    assert json.loads(target.read_text()) == {"a": 1}
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # shareable, like a normal file


def test_atomic_write_failure_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old")

    def chunks() -> object:
        yield b"partial"
        raise RuntimeError("disk went away")

    from kubetune.storage.atomic import atomic_write_chunks

    with pytest.raises(RuntimeError, match="disk went away"):
        atomic_write_chunks(target, chunks())  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TEMP_PREFIX)]


# -- the run context --------------------------------------------------------------------------


def _spec_data(**extra: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": "exp",
        "objective": {"metric": "accuracy"},
        "search_space": {"lr": {"type": "float", "low": 0.001, "high": 0.1}},
    }
    data.update(extra)
    return data


def test_run_context_defaults(tmp_path: Path) -> None:
    ctx = RunContext.from_spec(parse_spec(_spec_data()), base_dir=tmp_path)
    run = tmp_path / "kubetune-runs" / "exp"
    assert ctx.run_dir == run
    assert ctx.study_storage == str(run / "study.journal")
    assert ctx.trials_dir == run / "trials"
    assert (ctx.summary_path, ctx.report_path) == (run / "summary.json", run / "report.html")
    assert ctx.model_repo == DEFAULT_MODEL_REPO == "model-repo"
    assert ctx.base_dir == tmp_path


def test_run_context_uses_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ctx = RunContext.from_spec(parse_spec(_spec_data(runs_dir="out")))
    assert ctx.run_dir == tmp_path / "out" / "exp"


def test_run_context_precedence(tmp_path: Path) -> None:
    spec = parse_spec(_spec_data(model_repo="spec-repo", storage="spec.journal"))
    from_spec = RunContext.from_spec(spec, base_dir=tmp_path)
    assert from_spec.model_repo == "spec-repo"
    assert from_spec.study_storage == str(tmp_path / "spec.journal")
    explicit = RunContext.from_spec(
        spec, model_repo="s3://b/models", storage="sqlite:///x.db", base_dir=tmp_path
    )
    assert explicit.model_repo == "s3://b/models"
    assert explicit.study_storage == "sqlite:///x.db"


def test_run_context_in_memory_study(tmp_path: Path) -> None:
    assert (
        RunContext.from_spec(parse_spec(_spec_data()), in_memory_study=True).study_storage is None
    )
    given = parse_spec(_spec_data(storage="journal:s.journal"))
    in_memory = RunContext.from_spec(given, in_memory_study=True, base_dir=tmp_path)
    assert in_memory.study_storage == str(tmp_path / "s.journal")  # a named storage wins


def test_run_context_file_uris(tmp_path: Path) -> None:
    spec = parse_spec(
        _spec_data(runs_dir=f"file://localhost{tmp_path}/runs", storage=f"file://{tmp_path}/s.j")
    )
    ctx = RunContext.from_spec(spec, base_dir=Path("/elsewhere"))
    assert ctx.run_dir == tmp_path / "runs" / "exp"
    assert ctx.study_storage == str(tmp_path / "s.j")
    with pytest.raises(SpecError, match="runs_dir"):
        RunContext.from_spec(parse_spec(_spec_data(runs_dir="s3://b/runs")))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("study.journal", "{base}/study.journal"),
        ("journal:runs/s.log", "{base}/runs/s.log"),
        ("journal:file:///abs/s.journal", "/abs/s.journal"),
        ("/abs/s.journal", "/abs/s.journal"),
        ("sqlite:///rel.db", "sqlite:///rel.db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
    ],
)
def test_study_storage_url(tmp_path: Path, value: str, expected: str) -> None:
    assert study_storage_url(value, tmp_path) == expected.format(base=tmp_path)


def test_search_keeps_the_study_where_the_context_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubetune.core.search import run_search
    from kubetune.executors import create_executor

    monkeypatch.chdir(tmp_path)
    spec = parse_spec(
        {
            "name": "ctx",
            "objective": {"metric": "value", "direction": "minimize"},
            "search_space": {"x": {"type": "float", "low": -2, "high": 2}},
            "limits": {"max_trials": 3},
        }
    )
    ctx = RunContext.from_spec(spec, storage=f"file://{tmp_path}/elsewhere/s.journal")

    def objective(request: TrialRequest, reporter: object) -> float:
        return float(request.params["x"]) ** 2

    with create_executor(spec, trial_fn=objective, work_dir=ctx.trials_dir) as executor:
        result = run_search(spec, executor, context=ctx, output_dir=str(ctx.trials_dir))
    assert len(result.study.trials) == 3
    assert (tmp_path / "elsewhere" / "s.journal").stat().st_size > 0
    assert not (tmp_path / "kubetune-runs" / "ctx" / "study.journal").exists()
    # resuming through an equal context finds the same study
    with create_executor(spec, trial_fn=objective, work_dir=ctx.trials_dir) as executor:
        again = run_search(spec.updated("limits", {"max_trials": 4}), executor, context=ctx)
    assert len(again.study.trials) == 4
