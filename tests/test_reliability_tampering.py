"""Reliability: a tampered model repository (issue 14.7).

A changed, missing, extra or swapped model file, an edited manifest, and a pickle payload in
place of the model: each is refused on ``pull``, on ``load_model`` and when the champion gate
re-scores the production model, and nothing is ever unpickled. The last part is checked with
an audit hook (``sys.addaudithook``) in a fresh interpreter: unpickling anything that names a
global raises the ``pickle.find_class`` event, which the hook records and blocks.

What is not claimed: a writer who rewrites a version's files, its manifest and the alias
record consistently is not detected (there is no signing key); the loaders still refuse to
unpickle what such a writer plants, which the forged case below shows.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.reliability

KUBETUNE = [sys.executable, "-m", "kubetune"]
NAME = "tamper"


class _Payload:
    """Unpickling this runs a command that leaves a file behind."""

    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return os.system, (f"touch {self.canary}",)


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository with version 1 of an iris model as production, pushed by the real CLI."""
    root = tmp_path_factory.mktemp("tamper")
    (root / "spec.yaml").write_text(
        textwrap.dedent(
            f"""
            name: {NAME}
            objective: {{metric: val_accuracy, direction: maximize}}
            data: {{source: "sklearn:iris"}}
            trainer: {{kind: sklearn, estimator: sklearn.linear_model.LogisticRegression}}
            search_space:
              C: {{type: float, low: 0.01, high: 10, log: true}}
            strategy: {{name: random}}
            limits: {{max_trials: 3, parallel: 1}}
            seed: 0
            """
        )
    )
    done = subprocess.run(
        [*KUBETUNE, "run", "spec.yaml", "--model-repo", "repo"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return root


def _version_dir(repo: Path) -> Path:
    return repo / NAME / "versions" / "000001"


def _rewrite_manifest(repo: Path, edit: object) -> None:
    """Edit the manifest with ``edit(dict)``, and re-record its digest in the alias, as a
    writer with access to the whole repository could."""
    path = _version_dir(repo) / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)  # type: ignore[operator]
    path.write_text(json.dumps(manifest, indent=2))
    alias = repo / NAME / "aliases" / "production.json"
    record = json.loads(alias.read_text())
    record["manifest_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    alias.write_text(json.dumps(record))


def _changed(repo: Path, canary: Path) -> None:
    target = _version_dir(repo) / "model.skops"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))


def _missing(repo: Path, canary: Path) -> None:
    (_version_dir(repo) / "model.skops").unlink()


def _extra(repo: Path, canary: Path) -> None:
    (_version_dir(repo) / "extra.pkl").write_bytes(pickle.dumps(_Payload(canary)))


def _swapped(repo: Path, canary: Path) -> None:
    a, b = _version_dir(repo) / "model.json", _version_dir(repo) / "preprocessing.json"
    text_a, text_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(text_b)
    b.write_bytes(text_a)


def _manifest_edited(repo: Path, canary: Path) -> None:
    path = _version_dir(repo) / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["metrics"] = {k: 1.0 for k in manifest["metrics"]}  # a better-looking champion
    path.write_text(json.dumps(manifest, indent=2))


def _pickle_forged(repo: Path, canary: Path) -> None:
    """The model file replaced by a pickle payload, manifest and alias made consistent."""
    target = _version_dir(repo) / "model.skops"
    target.write_bytes(pickle.dumps(_Payload(canary)))
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    size = target.stat().st_size

    def edit(manifest: dict) -> None:  # type: ignore[type-arg]
        for entry in manifest["files"]:
            if entry["path"] == "model.skops":
                entry["sha256"], entry["size"] = digest, size

    _rewrite_manifest(repo, edit)


# kind: (tamper, words the pull's refusal contains, or None where the pull cannot tell)
TAMPERING = {
    "changed file": (_changed, "sha256"),
    "missing file": (_missing, "model.skops"),
    "extra file": (_extra, "extra.pkl"),
    "swapped files": (_swapped, "sha256"),
    "edited manifest": (_manifest_edited, "manifest"),
    # files, manifest and alias made consistent: only the loader stands in the way
    "pickle payload": (_pickle_forged, None),
}

# Runs in a fresh interpreter: the audit hook cannot be removed once added.
PROBE = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    events = []

    def hook(event, args):
        if event == "pickle.find_class":
            events.append(repr(args))
            raise RuntimeError(f"blocked unpickling of {args!r}")

    # Imports first: importing skops walks every scikit-learn module, and some optional
    # libraries it meets (dask) round-trip builtins through pickle at import time. The hook
    # watches what reading the repository does, not what importing libraries does.
    import skops.io
    from kubetune.core.spec import load_spec
    from kubetune.inference import load_model
    from kubetune.repository import open_repository
    from kubetune.steps.push import champion_gate
    from kubetune.steps.retrieve import retrieve

    sys.addaudithook(hook)

    root, name = Path(sys.argv[1]), sys.argv[2]
    repo = open_repository(root / "repo")
    out = {}

    def attempt(what, fn):
        try:
            fn()
            out[what] = "accepted"
        except Exception as exc:
            out[what] = f"{type(exc).__name__}: {exc}"

    attempt("pull", lambda: repo.pull(name, "production", root / "pulled"))
    attempt("load_model", lambda: load_model(f"{name}:production", repo=root / "repo"))
    # the champion gate with other data: it must re-score production, and refuse it
    spec = load_spec(root / "spec-changed.yaml")
    data = retrieve(spec)
    promote, why = champion_gate(repo, spec, "test_accuracy", 0.5, data=data)
    out["gate"] = {"promote": promote, "why": why}
    out["pickle_events"] = events
    print(json.dumps(out))
    """
)


@pytest.mark.parametrize("kind", list(TAMPERING))
def test_tampered_model_is_refused_and_never_unpickled(
    pushed: Path, tmp_path: Path, kind: str
) -> None:
    root = tmp_path / "case"
    root.mkdir()
    shutil.copytree(pushed / "repo", root / "repo")
    # the same experiment on other rows: the champion's recorded score is not comparable
    spec = (pushed / "spec.yaml").read_text().replace("seed: 0", "seed: 1")
    (root / "spec-changed.yaml").write_text(spec)
    canary = tmp_path / "unpickled-canary"
    tamper, words = TAMPERING[kind]
    tamper(root / "repo", canary)

    probe = subprocess.run(
        [sys.executable, "-c", PROBE, str(root), NAME],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert probe.returncode == 0, probe.stderr
    out = json.loads(probe.stdout.strip().splitlines()[-1])
    assert out["pickle_events"] == [], out
    assert not canary.exists()
    # refused on pull and on load, with a reason that says what is wrong
    if words is None:
        assert out["pull"] == "accepted", out
        assert "not a zip file" in out["load_model"].lower(), out
    else:
        assert out["pull"].startswith("RepositoryError"), out
        assert words in out["pull"], out
        assert not (root / "pulled").exists()  # nothing reaches the destination
    assert out["load_model"].startswith("RepositoryError"), out
    # the gate does not score a tampered champion: it says why, and the new model is promoted
    assert out["gate"]["promote"] is True, out
    assert "production" in out["gate"]["why"] and "cannot be" in out["gate"]["why"], out


def test_the_untampered_champion_is_rescored(pushed: Path, tmp_path: Path) -> None:
    """The control case: the same probe on the untouched repository accepts and re-scores,
    so the refusals above come from the tampering and not from the probe."""
    root = tmp_path / "case"
    root.mkdir()
    shutil.copytree(pushed / "repo", root / "repo")
    spec = (pushed / "spec.yaml").read_text().replace("seed: 0", "seed: 1")
    (root / "spec-changed.yaml").write_text(spec)
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, str(root), NAME],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert probe.returncode == 0, probe.stderr
    out = json.loads(probe.stdout.strip().splitlines()[-1])
    assert out["pull"] == "accepted" and out["load_model"] == "accepted", out
    assert "re-scored" in out["gate"]["why"], out
    assert out["pickle_events"] == []
