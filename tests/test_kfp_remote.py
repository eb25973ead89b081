"""``kubetune pipeline upload|submit|schedule|runs|status`` against a **simulated** KFP
REST server (``kubetune.testing.kfp_server``: http.server on 127.0.0.1 implementing the
v2beta1 endpoints ``kfp.Client`` calls). The real kfp 2.17 client makes the requests; the
tests check what the simulated server received."""

# No `from __future__ import annotations`: kfp reads the component's annotations as types.
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from kubetune.cli.main import main
from kubetune.kfp_client import KfpError, KfpSettings
from kubetune.kfp_client.cron import CronError, validate_cron
from kubetune.testing.kfp_server import SimulatedKfpServer

TOKEN = "s3cr3t-token-value"


def _compile(path: Path, name: str = "tiny", default_a: int = 1) -> Path:
    from kfp import compiler, dsl

    @dsl.component(base_image="python:3.11")
    def add(a: int, b: float) -> float:
        return a + b

    @dsl.pipeline(name=name)
    def tiny(must: str, a: int = default_a, b: float = 2.0, flag: bool = False) -> None:
        add(a=a, b=b)

    compiler.Compiler().compile(tiny, str(path))
    return path


@pytest.fixture(scope="module")
def pipelines(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("pipelines")
    return _compile(folder / "v1.yaml"), _compile(folder / "v2.yaml", default_a=5)


@pytest.fixture
def kfp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[SimulatedKfpServer]:
    import kfp as kfp_sdk

    # kfp.Client reads (and may write) ~/.config/kfp/context.json: keep the user's out.
    monkeypatch.setattr(kfp_sdk.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "context.json"))
    for name in ("KF_PIPELINES_NAMESPACE", "KF_PIPELINES_TOKEN", "KF_PIPELINES_COOKIES"):
        monkeypatch.delenv(name, raising=False)
    with SimulatedKfpServer() as server:
        monkeypatch.setenv("KF_PIPELINES_ENDPOINT", server.url)
        yield server


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["pipeline", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _first_doc(path: Path) -> dict:
    return next(iter(yaml.safe_load_all(path.read_text())))


# --- upload -------------------------------------------------------------------------------


def test_upload_creates_the_pipeline_then_adds_versions_by_name(
    kfp: SimulatedKfpServer, pipelines: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    v1, v2 = pipelines
    code, out, _ = _cli(capsys, "upload", str(v1), "--name", "tune-digits")
    assert code == 0 and "new pipeline tune-digits" in out
    (upload,) = kfp.requests_to("POST", "/pipelines/upload")
    assert upload.files["uploadfile"] == v1.read_bytes()  # the file given, byte for byte
    assert upload.query["name"] == ["tune-digits"]

    code, out, _ = _cli(capsys, "upload", str(v2), "--name", "tune-digits", "--version", "v2")
    assert code == 0 and "version v2 of pipeline tune-digits" in out
    (version,) = kfp.requests_to("POST", "/pipelines/upload_version")
    assert version.files["uploadfile"] == v2.read_bytes()
    assert version.query["name"] == ["v2"]
    assert version.query["pipelineid"] == [next(iter(kfp.pipelines))]
    assert len(kfp.pipelines) == 1 and len(kfp.versions) == 2

    # No --version: a name from the time and the file's hash, so it is new each upload.
    code, out, _ = _cli(capsys, "upload", str(v1), "--name", "tune-digits")
    assert code == 0
    names = sorted(v["display_name"] for v in kfp.versions.values())
    assert len(names) == 3 and any(n.endswith(_sha8(v1)) for n in names)


def _sha8(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()[:8]


def test_upload_refuses_a_file_that_is_not_a_compiled_pipeline(
    kfp: SimulatedKfpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: digits\nobjective: {metric: accuracy}\n")
    code, _, err = _cli(capsys, "upload", str(spec), "--name", "x")
    assert code == 2
    assert err.strip() == (
        f"error: {spec}: not a compiled KFP pipeline (no pipelineInfo/root); compile it first,"
        " e.g. kubetune pipeline compile SPEC -o pipeline.yaml"
    )
    code, _, err = _cli(capsys, "upload", str(tmp_path / "missing.yaml"), "--name", "x")
    assert code == 2 and "missing.yaml: pipeline file not found" in err
    assert kfp.requests == []  # refused before connecting


# --- submit -------------------------------------------------------------------------------


def test_submit_a_file_sends_its_spec_and_typed_parameters(
    kfp: SimulatedKfpServer, pipelines: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    v1, _ = pipelines
    code, out, _ = _cli(
        capsys,
        "submit",
        str(v1),
        "--experiment",
        "digits",
        "--run-name",
        "first",
        "--param",
        "must=yes",
        "--param",
        "a=3",
        "--param",
        "b=0.5",
        "--param",
        "flag=true",
    )
    assert code == 0 and "submitted run first" in out
    (experiment,) = kfp.requests_to("POST", "/experiments")
    assert experiment.json["display_name"] == "digits"
    (create,) = kfp.requests_to("POST", "/runs")
    assert create.json["display_name"] == "first"
    assert create.json["experiment_id"] == next(iter(kfp.experiments))
    assert create.json["pipeline_spec"] == _first_doc(v1)
    assert create.json["runtime_config"]["parameters"] == {
        "must": "yes",
        "a": 3,
        "b": 0.5,
        "flag": True,
    }


def test_submit_by_name_runs_the_named_or_newest_version(
    kfp: SimulatedKfpServer, pipelines: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    v1, v2 = pipelines
    _cli(capsys, "upload", str(v1), "--name", "tune")
    _cli(capsys, "upload", str(v2), "--name", "tune", "--version", "v2")
    ids = {v["display_name"]: v["pipeline_version_id"] for v in kfp.versions.values()}
    code, _, _ = _cli(capsys, "submit", "--pipeline", "tune", "--param", "must=1")
    assert code == 0
    code, _, _ = _cli(
        capsys, "submit", "--pipeline", "tune", "--version", "tune", "--param", "must=2"
    )
    assert code == 0
    newest, named = (r.json for r in kfp.requests_to("POST", "/runs"))
    assert newest["pipeline_version_reference"]["pipeline_version_id"] == ids["v2"]
    assert named["pipeline_version_reference"]["pipeline_version_id"] == ids["tune"]
    assert "pipeline_spec" not in named or named["pipeline_spec"] is None
    (experiment,) = kfp.experiments.values()
    assert experiment["display_name"] == "Default"  # created once, then found by name


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            ["must=x", "epochs=3"],
            "--param epochs: the pipeline has no such parameter (it has: a, b, flag, must)",
        ),
        (["must=x", "a=three"], "--param a='three': must be an integer"),
        (["must=x", "flag=maybe"], "--param flag='maybe': must be true or false"),
        ([], "the pipeline needs --param must=..."),
        (["must"], "--param 'must': expected NAME=VALUE"),
    ],
)
def test_submit_refuses_bad_parameters_before_creating_a_run(
    kfp: SimulatedKfpServer,
    pipelines: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    params: list[str],
    message: str,
) -> None:
    argv = ["submit", str(pipelines[0])]
    for p in params:
        argv += ["--param", p]
    code, _, err = _cli(capsys, *argv)
    assert code == 2
    assert err.strip() == f"error: {message}"
    assert kfp.requests_to("POST", "/runs") == []


def test_an_unknown_pipeline_name_says_how_to_upload_it(
    kfp: SimulatedKfpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _cli(capsys, "submit", "--pipeline", "nope")
    assert code == 2 and out == ""
    assert err.strip() == (
        f"error: no pipeline named 'nope' in Kubeflow Pipelines at {kfp.url}; upload it first:"
        " kubetune pipeline upload FILE --name nope"
    )


# --- schedule -----------------------------------------------------------------------------


def test_schedule_sends_cron_concurrency_catchup_window_and_parameters(
    kfp: SimulatedKfpServer, pipelines: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _cli(capsys, "upload", str(pipelines[0]), "--name", "tune")
    code, out, _ = _cli(
        capsys,
        "schedule",
        "--pipeline",
        "tune",
        "--experiment",
        "nightly",
        "--cron",
        "0 30 3 * * MON-FRI",
        "--max-concurrency",
        "2",
        "--no-catchup",
        "--start",
        "2026-02-01T00:00:00+01:00",
        "--end",
        "2026-12-31T23:00:00Z",
        "--param",
        "must=retune",
        "--param",
        "a=7",
        "--name",
        "retune-nightly",
    )
    assert code == 0
    assert "scheduled retune-nightly" in out and "cron 0 30 3 * * MON-FRI" in out
    (create,) = kfp.requests_to("POST", "/recurringruns")
    body = create.json
    assert body["display_name"] == "retune-nightly"
    assert body["trigger"]["cron_schedule"] == {
        "cron": "0 30 3 * * MON-FRI",
        "start_time": "2026-01-31T23:00:00Z",  # given in +01:00, sent in UTC
        "end_time": "2026-12-31T23:00:00Z",
    }
    assert body["max_concurrency"] == 2
    assert body["no_catchup"] is True
    assert body["mode"] == "ENABLE"
    assert body["runtime_config"]["parameters"] == {"must": "retune", "a": 7}
    assert body["experiment_id"] == next(iter(kfp.experiments))

    # Without the options: one at a time, catching up, no window.
    _cli(capsys, "schedule", "--pipeline", "tune", "--cron", "@daily", "--param", "must=x")
    second = kfp.requests_to("POST", "/recurringruns")[1].json
    assert second["max_concurrency"] == 1 and second["no_catchup"] is False
    assert second["trigger"]["cron_schedule"] == {"cron": "@daily"}


@pytest.mark.parametrize(
    ("cron", "problem"),
    [
        ("0 3 * * *", "5 fields; KFP's cron has 6 fields, seconds first"),
        ("0 0 25 * * *", "hour field '25': '25' is not in 0-23"),
        ("0 0 3 ? * ?", None),
        ("0 0 3 * * ?", None),
        ("*/15 0-30/5 1,2,3 L * *", "day of month field 'L'"),
        ("0 0 3 * JAN-MAR SUN", None),
        ("0 0 9-5 * * *", "range '9-5' runs backwards"),
        ("@every 1h30m", None),
        ("@fortnightly", "unknown descriptor"),
        ("? 0 0 * * *", "'?' is allowed only for day of month or week"),
    ],
)
def test_cron_is_checked_as_kfp_reads_it(cron: str, problem: str | None) -> None:
    if problem is None:
        assert validate_cron(cron) == cron
    else:
        with pytest.raises(CronError, match=problem.replace("?", r"\?").replace("*", r"\*")):
            validate_cron(cron)


def test_a_five_field_cron_is_refused_before_anything_is_created(
    kfp: SimulatedKfpServer, pipelines: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _cli(
        capsys, "schedule", str(pipelines[0]), "--cron", "30 3 * * *", "--param", "must=x"
    )
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "KFP's cron has 6 fields, seconds first" in err
    assert "did you mean '0 30 3 * * *'?" in err
    code, _, err = _cli(
        capsys,
        "schedule",
        str(pipelines[0]),
        "--cron",
        "@daily",
        "--param",
        "must=x",
        "--start",
        "2026-02-01T00:00:00Z",
        "--end",
        "2026-01-01T00:00:00Z",
    )
    assert code == 2 and "--end 2026-01-01T00:00:00Z: must be after --start" in err
    assert kfp.requests_to("POST", "/recurringruns") == []


# --- runs and status ----------------------------------------------------------------------


def test_runs_and_status_show_what_ran(
    kfp: SimulatedKfpServer, pipelines: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    v1 = str(pipelines[0])
    _cli(capsys, "submit", v1, "--run-name", "one", "--experiment", "a", "--param", "must=1")
    _cli(capsys, "submit", v1, "--run-name", "two", "--experiment", "b", "--param", "must=2")
    first, second = kfp.runs
    kfp.set_run_state(first, "SUCCEEDED", tasks={"retrieve": "SUCCEEDED", "search": "SUCCEEDED"})
    kfp.set_run_state(second, "FAILED", error="search: pod OOMKilled")

    code, out, _ = _cli(capsys, "runs")
    assert code == 0
    lines = out.strip().splitlines()
    assert [line.split()[0] for line in lines] == [second, first]  # newest first
    assert "FAILED" in lines[0] and "SUCCEEDED" in lines[1]
    code, out, _ = _cli(capsys, "runs", "--experiment", "a", "--output", "json")
    assert [r["name"] for r in json.loads(out)] == ["one"]

    code, out, _ = _cli(capsys, "status", first)
    assert code == 0
    assert f"one (id {first}): SUCCEEDED" in out
    assert "task retrieve: SUCCEEDED" in out and "param must = 1" in out
    code, out, _ = _cli(capsys, "status", second, "--output", "json")
    data = json.loads(out)
    assert data["state"] == "FAILED" and data["error"] == "search: pod OOMKilled"

    code, _, err = _cli(capsys, "status", "run-9999")
    assert code == 2
    assert err.strip() == (
        f"error: Kubeflow Pipelines at {kfp.url} answered 404 Not Found (reading run"
        " run-9999): run 'run-9999' not found"
    )


def test_recurring_runs_are_listed_and_shown(
    kfp: SimulatedKfpServer, pipelines: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _cli(
        capsys,
        "schedule",
        str(pipelines[0]),
        "--cron",
        "0 0 * * * *",
        "--param",
        "must=x",
        "--name",
        "hourly",
        "--no-catchup",
    )
    (job_id,) = kfp.recurring_runs
    code, out, _ = _cli(capsys, "runs", "--recurring")
    assert code == 0 and out.split()[0] == job_id and "ENABLED" in out
    code, out, _ = _cli(capsys, "status", job_id, "--recurring", "--output", "json")
    data = json.loads(out)
    assert data["trigger"] == "cron 0 0 * * * *" and data["no_catchup"] is True

    run_id = kfp.trigger(job_id)  # the schedule fires (simulated)
    code, out, _ = _cli(capsys, "status", run_id)
    assert f"started by recurring run {job_id}" in out and "param must = x" in out


# --- connection and authentication --------------------------------------------------------


def test_a_token_from_a_file_is_sent_and_never_printed(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    pipelines: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    import kfp as kfp_sdk

    monkeypatch.setattr(kfp_sdk.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "context.json"))
    monkeypatch.delenv("KF_PIPELINES_TOKEN", raising=False)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    wrong = tmp_path / "wrong"
    wrong.write_text("wrong-" + TOKEN)
    with SimulatedKfpServer(token=TOKEN) as server:
        base = ["--host", server.url]
        code, _, _ = _cli(capsys, "runs", *base, "--token-file", str(token_file))
        assert code == 0
        assert {r.authorization for r in server.requests} == {f"Bearer {TOKEN}"}

        code, out, err = _cli(capsys, "runs", *base)
        assert code == 2 and "Traceback" not in err
        assert err.strip() == (
            f"error: Kubeflow Pipelines at {server.url} answered 401 Unauthorized: no token"
            " was given (--token-file or KF_PIPELINES_TOKEN; or cookies: KF_PIPELINES_COOKIES)"
        )
        code, out, err = _cli(
            capsys, "upload", str(pipelines[0]), "--name", "x", *base, "--token-file", str(wrong)
        )
        assert code == 2 and "401 Unauthorized" in err and "the token was refused" in err
        assert TOKEN not in out + err

        monkeypatch.setenv("KF_PIPELINES_TOKEN", TOKEN)  # the environment works too
        server.forbidden = True
        code, _, err = _cli(capsys, "runs", *base)
        assert code == 2 and "answered 403 Forbidden" in err and TOKEN not in err


def test_an_unreachable_host_is_one_line_and_quick(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import kfp as kfp_sdk

    monkeypatch.setattr(kfp_sdk.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "context.json"))
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    code, _, err = _cli(capsys, "runs", "--host", f"http://127.0.0.1:{port}")
    assert time.monotonic() - started < 5  # not kfp's 5 healthz attempts, 5 s apart
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: cannot reach Kubeflow Pipelines at http://127.0.0.1:{port}")
    assert "Connection refused" in err


def test_without_a_host_the_error_says_where_to_give_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KF_PIPELINES_ENDPOINT", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    code, _, err = _cli(capsys, "runs")
    assert (
        code == 2 and "no Kubeflow Pipelines host: give --host or set KF_PIPELINES_ENDPOINT" in err
    )


def test_settings_never_show_secrets() -> None:
    settings = KfpSettings.resolve(
        host="https://kfp.example",
        environ={"KF_PIPELINES_TOKEN": TOKEN, "KF_PIPELINES_COOKIES": "authservice_session=abc"},
    )
    assert settings.token == TOKEN and settings.cookies == "authservice_session=abc"
    assert TOKEN not in repr(settings) and "abc" not in repr(settings)
    with pytest.raises(KfpError, match="give either a compiled pipeline FILE or --pipeline"):
        from kubetune.kfp_client import PipelineRef

        PipelineRef(file="a.yaml", name="b")


def test_cookies_and_a_profile_namespace_are_sent(
    kfp: SimulatedKfpServer, pipelines: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A multi-user Kubeflow: an auth-proxy session cookie and the profile namespace."""
    kfp.multi_user = True
    cookie = "authservice_session=s3ss10n"
    common = ["--namespace", "team-a", "--cookies", cookie]
    code, _, _ = _cli(capsys, "upload", str(pipelines[0]), "--name", "tune", *common)
    assert code == 0
    code, _, err = _cli(capsys, "submit", "--pipeline", "tune", "--param", "must=1", *common)
    assert code == 0 and "s3ss10n" not in err
    assert {r.cookie for r in kfp.requests} == {cookie}
    # With a namespace given, kfp.Client asks no health check to find one.
    assert kfp.requests_to("GET", "/healthz") == []
    (upload,) = kfp.requests_to("POST", "/pipelines/upload")
    assert upload.query["namespace"] == ["team-a"]
    (experiment,) = kfp.requests_to("POST", "/experiments")
    assert experiment.json["namespace"] == "team-a"


def test_a_caching_override_is_refused_where_kfp_would_drop_it(
    kfp: SimulatedKfpServer, pipelines: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    v1 = str(pipelines[0])
    code, _, _ = _cli(capsys, "submit", v1, "--param", "must=1", "--cache", "off")
    assert code == 0
    (run,) = kfp.requests_to("POST", "/runs")
    tasks = run.json["pipeline_spec"]["root"]["dag"]["tasks"]
    assert all(task["cachingOptions"] == {} for task in tasks.values())  # caching off
    assert _first_doc(pipelines[0])["root"]["dag"]["tasks"]["add"]["cachingOptions"] == {
        "enableCache": True
    }
    _cli(capsys, "upload", v1, "--name", "tune")
    code, _, err = _cli(
        capsys, "submit", "--pipeline", "tune", "--param", "must=1", "--cache", "on"
    )
    assert code == 2 and "--cache applies to a pipeline FILE only" in err
    assert len(kfp.requests_to("POST", "/runs")) == 1
