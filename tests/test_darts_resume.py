"""DARTS resumes mid-search: the supernet's state is checkpointed every epoch in the artifact
store and a restarted search continues from the saved epoch, ending exactly where an
uninterrupted search with the same seed ends.

Bit-identity holds here because the restored state is everything the next epoch reads
(weights, architecture logits, both optimizers' moments, the batch generator's and torch's
RNG states) and the search runs on one CPU thread (torch-mlp's default), where the same
operations in the same order give the same floats. On a GPU with non-deterministic kernels
only the derived architecture could be compared.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from safetensors.torch import load_file

import kubetune
from kubetune.artifacts import StepArtifacts
from kubetune.core.spec import parse_spec
from kubetune.core.strategies.darts import darts_space
from kubetune.core.strategies.factory import darts_options
from kubetune.steps.retrieve import retrieve
from kubetune.storage.registry import open_store
from kubetune.trainers.darts import darts_search
from kubetune.trainers.darts_checkpoint import SearchState, SupernetCheckpoints

DEPTH2 = {"type": "int", "low": 2, "high": 2}
SPACE = {
    "n_layers": DEPTH2,
    "units": {"type": "categorical", "choices": [4, 16, 64], "per_layer": "n_layers"},
    "activation": {"type": "categorical", "choices": ["relu", "tanh"], "per_layer": "n_layers"},
    "lr": 0.01,
}


def _spec_dict(name: str, epochs: int, batch_size: int) -> dict[str, Any]:
    return {
        "name": name,
        "objective": {"metric": "val_accuracy"},
        "data": {"source": "sklearn:digits"},
        "trainer": {"kind": "torch-mlp", "epochs": 2},
        "search_space": SPACE,
        "strategy": {"name": "darts", "epochs": epochs, "batch_size": batch_size},
        "limits": {"max_trials": 1},
        "seed": 3,
    }


class _Killed(Exception):
    """Stands in for the controller's death right after a checkpoint."""


class _DiesAfter(SupernetCheckpoints):
    def __init__(self, folder: StepArtifacts, key: str, epoch: int) -> None:
        super().__init__(folder, key)
        self.epoch = epoch

    def save(self, state: SearchState, *args: Any) -> None:
        super().save(state, *args)
        if state.epoch == self.epoch:
            raise _Killed


def _folder(root: Path) -> StepArtifacts:
    return StepArtifacts(open_store(str(root)), "s", "darts")


def _saved_tensors(folder: StepArtifacts, dest: Path) -> dict[str, Any]:
    path = folder.load_checkpoint(dest)
    assert path is not None
    return load_file(str(path / "supernet.safetensors"))


@pytest.mark.slow
def test_search_resumed_from_a_saved_epoch_ends_bit_identical(tmp_path: Path) -> None:
    spec = parse_spec(_spec_dict("resume", 5, 128))
    dspace, data = darts_space(spec.space), retrieve(spec)
    options = {"epochs": 5, "arch_lr": 3e-3, "weight_lr": 0.05, "batch_size": 128, "seed": 3}

    whole_folder = _folder(tmp_path / "whole")
    whole = darts_search(
        dspace, data, checkpoints=SupernetCheckpoints(whole_folder, "k"), **options
    )
    assert whole.resumed_at == 0

    folder = _folder(tmp_path / "killed")
    with pytest.raises(_Killed):
        darts_search(dspace, data, checkpoints=_DiesAfter(folder, "k", epoch=2), **options)
    record = folder.checkpoint()
    assert record is not None and record.step == 2

    resumed = darts_search(dspace, data, checkpoints=SupernetCheckpoints(folder, "k"), **options)
    assert resumed.resumed_at == 2  # not epoch 0
    assert resumed.config == whole.config
    assert resumed.weights == whole.weights
    # every tensor of the final state, architecture logits and optimizer moments included
    a, b = _saved_tensors(whole_folder, tmp_path / "a"), _saved_tensors(folder, tmp_path / "b")
    assert a.keys() == b.keys() and any(k.startswith("opt.arch.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]


def test_a_checkpoint_of_another_search_is_not_resumed(tmp_path: Path) -> None:
    spec = parse_spec(_spec_dict("other", 2, 256))
    dspace, data = darts_space(spec.space), retrieve(spec)
    options = {"epochs": 2, "arch_lr": 3e-3, "weight_lr": 0.05, "batch_size": 256, "seed": 3}
    folder = _folder(tmp_path)
    with pytest.raises(_Killed):
        darts_search(dspace, data, checkpoints=_DiesAfter(folder, "old", epoch=1), **options)
    fresh = darts_search(dspace, data, checkpoints=SupernetCheckpoints(folder, "new"), **options)
    assert fresh.resumed_at == 0


def _run(spec_file: Path, cwd: Path) -> subprocess.Popen[bytes]:
    # the kubetune under test, whatever the working directory (PYTHONPATH may be relative)
    src = str(Path(kubetune.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    cmd = [sys.executable, "-m", "kubetune", "run", str(spec_file)]
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _step(record_file: Path) -> int:
    try:
        return int(json.loads(record_file.read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


@pytest.mark.slow
def test_controller_sigkilled_mid_search_resumes_from_the_saved_epoch(tmp_path: Path) -> None:
    """A real SIGKILL of a ``kubetune run`` process while its supernet trains; the next
    ``kubetune run`` continues from the saved epoch and derives what an uninterrupted
    search with the same seed derives."""
    epochs = 12
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(_spec_dict("killed", epochs, 16)))
    record = tmp_path / "kubetune-runs/killed/artifacts/studies/killed/steps/darts/checkpoint.json"

    proc = _run(spec_file, tmp_path)
    deadline = time.monotonic() + 120
    while _step(record) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    output = proc.communicate()[0].decode()
    assert proc.returncode == -signal.SIGKILL, output  # killed, not finished
    killed_at = _step(record)
    assert 2 <= killed_at < epochs, killed_at  # mid-search: after some epochs, before the end
    assert not (tmp_path / "kubetune-runs/killed/darts.json").exists()

    proc = _run(spec_file, tmp_path)
    output = proc.communicate(timeout=300)[0].decode()
    assert proc.returncode == 0, output
    assert f"resumed at epoch {killed_at} of {epochs}" in output
    resumed = json.loads((tmp_path / "kubetune-runs/killed/darts.json").read_text())["result"]
    assert resumed["resumed_at"] == killed_at

    # the same search, never interrupted, in this process (one thread, as the runs)
    spec = parse_spec(_spec_dict("killed", epochs, 16))
    options = darts_options(spec.strategy.options)
    whole = darts_search(darts_space(spec.space), retrieve(spec), seed=spec.seed, **options)
    assert resumed["config"] == whole.config
    assert resumed["weights"] == whole.weights
