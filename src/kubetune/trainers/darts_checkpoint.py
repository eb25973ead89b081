"""The DARTS supernet search's state, saved every epoch so a restarted controller resumes it.

Everything the next epoch depends on is saved: the supernet's weights and architecture
logits, both optimizers' state (SGD momentum, Adam moments and step), the mini-batch
generator's and torch's global RNG states (dropout), the epoch reached and the seconds
spent. Restored into freshly built objects, the search continues exactly as an
uninterrupted one would (same floating-point operations in the same order, on one CPU
thread by default).

Stored as a two-file checkpoint in the artifact store (``kubetune.artifacts``, atomic:
``checkpoint.json`` is replaced last): ``supernet.safetensors`` for every tensor and
``state.json`` for the rest. No pickle from storage. ``state.json`` carries a key of what
makes the search reproducible (space, options, seed, data, trainer); a checkpoint of
another search is ignored and the search starts again from epoch 0.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from kubetune.artifacts import TrialArtifacts
from kubetune.errors import StorageError

__all__ = ["SearchState", "SupernetCheckpoints"]

_log = logging.getLogger(__name__)

TENSORS = "supernet.safetensors"
STATE = "state.json"
_FORMAT = 1
_TENSOR = "__tensor__"  # marks, in state.json, a value kept in the safetensors file


@dataclass
class SearchState:
    """Where a supernet search stands after ``epoch`` epochs."""

    epoch: int
    seconds: float  # search time spent so far, over every run of it


class SupernetCheckpoints:
    """Saves and restores one search's state in an artifact folder (``key``: see module)."""

    def __init__(self, folder: TrialArtifacts, key: str) -> None:
        self.folder = folder
        self.key = key

    def __repr__(self) -> str:
        return f"SupernetCheckpoints({self.folder.uri!r})"

    def save(
        self,
        state: SearchState,
        net: torch.nn.Module,
        optimizers: dict[str, torch.optim.Optimizer],
        generator: torch.Generator,
    ) -> None:
        tensors: dict[str, torch.Tensor] = {}
        for name, value in net.state_dict().items():
            tensors[f"net.{name}"] = value.detach().cpu().contiguous()
        tensors["rng.generator"] = generator.get_state()
        tensors["rng.torch"] = torch.get_rng_state()
        document = {
            "format": _FORMAT,
            "key": self.key,
            "epoch": state.epoch,
            "seconds": state.seconds,
            "optimizers": {
                name: _optimizer_json(name, opt.state_dict(), tensors)
                for name, opt in optimizers.items()
            },
        }
        with tempfile.TemporaryDirectory(prefix="kubetune-darts-") as tmp:
            save_file(tensors, str(Path(tmp) / TENSORS))
            (Path(tmp) / STATE).write_text(json.dumps(document, sort_keys=True))
            self.folder.save_checkpoint(Path(tmp), step=state.epoch)

    def restore(
        self,
        net: torch.nn.Module,
        optimizers: dict[str, torch.optim.Optimizer],
        generator: torch.Generator,
    ) -> SearchState | None:
        """Load the saved state into these freshly built objects; None (and nothing
        changed) when there is no checkpoint or it belongs to another search."""
        with tempfile.TemporaryDirectory(prefix="kubetune-darts-") as tmp:
            path = self.folder.load_checkpoint(Path(tmp))  # verified against its sha256
            if path is None:
                return None
            try:
                document = json.loads((path / STATE).read_text())
                if document.get("format") != _FORMAT or document.get("key") != self.key:
                    _log.info("%s holds another search's state: starting at epoch 0", self)
                    return None
                tensors = load_file(str(path / TENSORS))
            except (OSError, ValueError) as exc:
                raise StorageError(
                    f"unreadable DARTS checkpoint in {self.folder.uri}: {exc}"
                ) from None
        # copied into the existing parameters, on whatever device they live
        net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
        for name, opt in optimizers.items():
            opt.load_state_dict(_optimizer_state(document["optimizers"][name], tensors))
        generator.set_state(tensors["rng.generator"])
        torch.set_rng_state(tensors["rng.torch"])
        return SearchState(int(document["epoch"]), float(document["seconds"]))


def _optimizer_json(
    name: str, state_dict: dict[str, Any], tensors: dict[str, torch.Tensor]
) -> dict[str, Any]:
    """An optimizer's state dict with its tensors moved into ``tensors`` (JSON-safe rest)."""
    state: dict[str, dict[str, Any]] = {}
    for index, entry in state_dict["state"].items():
        state[str(index)] = {}
        for field, value in entry.items():
            if isinstance(value, torch.Tensor):
                key = f"opt.{name}.{index}.{field}"
                tensors[key] = value.detach().cpu().contiguous()
                value = {_TENSOR: key}
            state[str(index)][field] = value
    return {"state": state, "param_groups": state_dict["param_groups"]}


def _optimizer_state(saved: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The state dict :func:`_optimizer_json` saved (``load_state_dict`` moves each tensor
    to its parameter's device, and Adam's step count where Adam keeps it)."""
    state: dict[int, dict[str, Any]] = {}
    for index, entry in saved["state"].items():
        state[int(index)] = {
            field: tensors[value[_TENSOR]] if isinstance(value, dict) else value
            for field, value in entry.items()
        }
    return {"state": state, "param_groups": saved["param_groups"]}
