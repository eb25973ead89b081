"""The shared study on a real PostgreSQL server (the one .ci/run starts; these tests fail
under CI without it and are skipped elsewhere), directly and through optuna's gRPC storage
proxy served by ``kubetune study-proxy``:

- many OS processes, as trial pods would, writing trials into one study at once: no trial
  lost, none duplicated, none mixed up with another's params, values or reports;
- a second controller on a running study is refused with a clear message, leaves the first
  one's trials alone, and takes over at once after the first one is SIGKILLed;
- two controllers starting at the same moment: exactly one runs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from kubetune.core import optuna_compat as compat
from kubetune.core.attrs import LEASE
from kubetune.core.storage import grpc_proxy_storage, open_storage, redact_url
from kubetune.errors import SpecError, StorageError
from kubetune.testing.tools import postgres_url

optuna.logging.set_verbosity(optuna.logging.WARNING)
SRC = Path(__file__).resolve().parents[1] / "src"
WRITERS = 8
TRIALS_PER_WRITER = 6


def _env() -> dict[str, str]:
    """The child processes import this checkout's kubetune."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def database() -> str:
    return postgres_url()


@pytest.fixture(scope="module")
def proxy(database: str) -> Iterator[str]:
    """``kubetune study-proxy`` in front of the database, on a loopback port."""
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubetune",
            "study-proxy",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env={**_env(), "KUBETUNE_STORAGE": database},  # the password stays out of argv
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"grpc://127.0.0.1:{port}"
    try:
        grpc_proxy_storage(url, wait_s=60)  # waits until it serves
        yield url
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
        password = database.split("://", 1)[1].split("@", 1)[0].partition(":")[2]
        assert f"serving {database.split('://')[0]}://" in stderr
        assert not password or password not in stderr, "the proxy printed the password"


@pytest.fixture(params=["postgresql", "grpc-proxy"])
def storage_url(request: pytest.FixtureRequest, database: str) -> str:
    if request.param == "postgresql":
        return database
    return str(request.getfixturevalue("proxy"))


# --- many writers ----------------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import optuna
    from kubetune.core.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url, name, writer, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    sync = Path(sys.argv[5])
    sampler = optuna.samplers.RandomSampler(seed=writer)
    study = optuna.load_study(study_name=name, storage=open_storage(url), sampler=sampler)
    (sync / f"ready-{writer}").touch()
    while not (sync / "go").exists():  # all writers start together
        time.sleep(0.01)
    for seq in range(n):
        trial = study.ask()
        x = trial.suggest_float("x", -10.0, 10.0)
        trial.set_user_attr("writer", writer)
        trial.set_user_attr("seq", seq)
        for step in range(3):
            trial.report(x + step, step)
        study.tell(trial, x * x)
    """
)


@pytest.mark.slow
def test_many_trial_processes_write_one_study_without_losing_a_trial(
    storage_url: str, tmp_path: Path
) -> None:
    name = f"shared-{uuid.uuid4().hex[:8]}"  # the database outlives the test
    optuna.create_study(study_name=name, storage=open_storage(storage_url))
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                str(script),
                storage_url,
                name,
                str(w),
                str(TRIALS_PER_WRITER),
                str(tmp_path),
            ],
            env=_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(WRITERS)
    ]
    try:
        deadline = time.monotonic() + 120
        while len(list(tmp_path.glob("ready-*"))) < WRITERS:
            assert all(w.poll() is None for w in writers), [w.communicate() for w in writers]
            assert time.monotonic() < deadline, "writers did not start"
            time.sleep(0.05)
        (tmp_path / "go").touch()
        for w in writers:
            _, err = w.communicate(timeout=180)
            assert w.returncode == 0, err
    finally:
        for w in writers:
            if w.poll() is None:
                w.kill()
                w.wait()

    trials = optuna.load_study(study_name=name, storage=open_storage(storage_url)).trials
    total = WRITERS * TRIALS_PER_WRITER
    assert len(trials) == total
    assert sorted(t.number for t in trials) == list(range(total)), "numbers unique, no gap"
    assert len({t._trial_id for t in trials}) == total
    assert all(t.state == TrialState.COMPLETE for t in trials)
    written = {(t.user_attrs["writer"], t.user_attrs["seq"]) for t in trials}
    assert written == {(w, s) for w in range(WRITERS) for s in range(TRIALS_PER_WRITER)}
    for t in trials:  # each trial holds its own writer's params, value and reports
        x = t.params["x"]
        assert t.value == pytest.approx(x * x)
        assert t.intermediate_values == {
            0: pytest.approx(x),
            1: pytest.approx(x + 1),
            2: pytest.approx(x + 2),
        }


# --- one controller at a time ----------------------------------------------------------------

CONTROLLER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import optuna
    import kubetune
    from kubetune.errors import StudyInUseError

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url, name, max_trials, sleep_s = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    sync = Path(sys.argv[5]) if len(sys.argv) > 5 else None

    def objective(params):
        time.sleep(sleep_s)
        return params["x"]

    if sync is not None:
        (sync / f"ready-{sys.argv[6]}").touch()
        while not (sync / "go").exists():
            time.sleep(0.005)
    try:
        result = kubetune.tune(
            objective, {"x": {"type": "float", "low": 0.0, "high": 1.0}}, strategy="random",
            storage=url, name=name, max_trials=max_trials, parallel=2,
        )
    except StudyInUseError as exc:
        print("REFUSED:", exc, flush=True)
        sys.exit(3)
    print("RAN:", result.stop_reason, flush=True)
    """
)


def _controller(
    script: Path, url: str, name: str, max_trials: int, sleep_s: float, *extra: str
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(script), url, name, str(max_trials), str(sleep_s), *extra],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _states(url: str, name: str) -> dict[TrialState, int]:
    try:
        study = optuna.load_study(study_name=name, storage=open_storage(url))
    except KeyError:
        return {}
    counts: dict[TrialState, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state] = counts.get(t.state, 0) + 1
    return counts


@pytest.mark.slow
def test_a_second_controller_is_refused_and_takes_over_after_a_sigkill(
    storage_url: str, tmp_path: Path
) -> None:
    name = f"leased-{uuid.uuid4().hex[:8]}"
    script = tmp_path / "controller.py"
    script.write_text(CONTROLLER)
    first = _controller(script, storage_url, name, 1000, 0.2)
    try:
        deadline = time.monotonic() + 90
        while _states(storage_url, name).get(TrialState.COMPLETE, 0) < 2:
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first controller made no progress"
            time.sleep(0.1)

        second = _controller(script, storage_url, name, 1000, 0.2)
        out, err = second.communicate(timeout=90)
        assert second.returncode == 3, out + err
        assert f"REFUSED: study '{name}' is run by another controller" in out
        assert f"pid {first.pid}" in out and "one controller runs a study at a time" in out
        states = _states(storage_url, name)
        assert states.get(TrialState.FAIL, 0) == 0, "the refused controller failed a trial"
        assert first.poll() is None, "the first controller was disturbed"

        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate()

    # the holder is dead on this host: the next controller takes over at once, no TTL wait
    done = _states(storage_url, name).get(TrialState.COMPLETE, 0)
    started = time.monotonic()
    third = _controller(script, storage_url, name, done + 2, 0.0)
    out, err = third.communicate(timeout=120)
    assert third.returncode == 0, out + err
    assert time.monotonic() - started < 60
    states = _states(storage_url, name)
    assert states.get(TrialState.RUNNING, 0) == 0
    assert states.get(TrialState.COMPLETE, 0) == done + 2
    study = optuna.load_study(study_name=name, storage=open_storage(storage_url))
    assert compat.study_system_attrs(study).get(LEASE) is None  # released on exit


@pytest.mark.slow
def test_two_controllers_starting_at_once_exactly_one_runs(database: str, tmp_path: Path) -> None:
    script = tmp_path / "controller.py"
    script.write_text(CONTROLLER)
    for round_ in range(2):
        name = f"race-{uuid.uuid4().hex[:8]}"
        sync = tmp_path / f"round-{round_}"
        sync.mkdir()
        racers = [_controller(script, database, name, 3, 0.1, str(sync), str(i)) for i in range(2)]
        deadline = time.monotonic() + 90
        while len(list(sync.glob("ready-*"))) < 2:
            assert time.monotonic() < deadline, [r.communicate() for r in racers]
            time.sleep(0.02)
        (sync / "go").touch()
        outputs = [r.communicate(timeout=120)[0] for r in racers]
        assert sorted(o.split(":", 1)[0] for o in outputs) == ["RAN", "REFUSED"], outputs
        assert _states(database, name) == {TrialState.COMPLETE: 3}


def test_an_unreachable_proxy_is_one_clear_error() -> None:
    port = _free_port()  # nothing listens there
    with pytest.raises(
        SpecError, match=rf"no gRPC storage proxy answers at grpc://127.0.0.1:{port}"
    ):
        grpc_proxy_storage(f"grpc://127.0.0.1:{port}", wait_s=0.2)
    with pytest.raises(SpecError, match="is not grpc://HOST:PORT"):
        open_storage("grpc://no-port")


def test_the_proxy_refuses_a_storage_it_cannot_serve(tmp_path: Path) -> None:
    for storage, expected in (
        (str(tmp_path / "study.journal"), "must be a database URL"),
        ("grpc://127.0.0.1:1", "must be a database URL"),
    ):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "kubetune",
                "study-proxy",
                "--storage",
                storage,
                "--host",
                "127.0.0.1",
            ],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2 and expected in result.stderr
        assert "Traceback" not in result.stderr


# --- credentials never shown -----------------------------------------------------------------


def test_redact_url_hides_only_the_password() -> None:
    assert (
        redact_url("postgresql+psycopg2://kt:s3cr%40t@db:5432/kubetune")
        == "postgresql+psycopg2://kt:***@db:5432/kubetune"
    )
    assert redact_url("sqlite:///tmp/study.db") == "sqlite:///tmp/study.db"
    assert redact_url("postgresql://db/kubetune") == "postgresql://db/kubetune"


def test_an_unreachable_database_is_one_error_without_the_password() -> None:
    url = f"postgresql+psycopg2://kubetune:TopSecret-1@127.0.0.1:{_free_port()}/kubetune"
    with pytest.raises(StorageError) as refused:
        open_storage(url)
    message = str(refused.value)
    assert message.startswith("storage: cannot open the study database postgresql+psycopg2://")
    assert "kubetune:***@127.0.0.1" in message and "TopSecret-1" not in message


def test_a_wrong_database_password_is_refused_without_showing_it(
    database: str, tmp_path: Path
) -> None:
    scheme, rest = database.split("://", 1)
    user, at_host = rest.split(":", 1)[0], rest.split("@", 1)[1]
    wrong = f"{scheme}://{user}:Wrong-Pass-42@{at_host}"
    result = subprocess.run(
        [sys.executable, "-m", "kubetune", "study-proxy", "--host", "127.0.0.1", "--port", "1"],
        env={**_env(), "KUBETUNE_STORAGE": wrong},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "error: storage: cannot open the study database" in result.stderr
    assert "password authentication failed" in result.stderr
    assert "Wrong-Pass-42" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
