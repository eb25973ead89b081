"""What a torch trial needs, beyond its weights, to go on training where it stopped.

A checkpoint that holds only weights makes a resumed trial (a config promoted to the next
rung of the looping pipeline, a pbt member's next interval, an inheriting child) restart
its optimizer: Adam's moments and SGD's momentum start from zero, so the first steps after
a resume are not those of an uninterrupted run. :class:`TrainingState` keeps them next to
the weights, in ``optimizer.safetensors`` (tensors in safetensors, no pickle, like the
weights), together with the random generators' states so that an exact resume draws the
same mini-batches and dropout masks an uninterrupted run would have.

It belongs to checkpoints only (``TrainedModel.save_training_state``), never to the model
repository: a stored model is for predicting. The torch trainers use no learning-rate
scheduler (under pbt the member's ``lr`` per interval *is* the schedule), so there is no
scheduler state to keep.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import safe_open, save_file

__all__ = ["TRAINING_STATE_FILE", "TrainingState"]

TRAINING_STATE_FILE = "optimizer.safetensors"
_STATE = "state."  # state.<param index>.<name>: one optimizer state tensor
_RNG_SHUFFLE = "rng.shuffle"  # the generator that orders mini-batches
_RNG_TORCH = "rng.torch"  # torch's default CPU generator (dropout on CPU)
_RNG_CUDA = "rng.cuda"  # the current CUDA device's generator (dropout on a GPU)


def _shapes(optimizer: torch.optim.Optimizer) -> list[list[int]]:
    return [list(p.shape) for group in optimizer.param_groups for p in group["params"]]


@dataclass
class TrainingState:
    """The optimizer and the mini-batch generator of one training run."""

    optimizer: torch.optim.Optimizer
    generator: torch.Generator

    def save(self, directory: Path) -> Path:
        tensors: dict[str, torch.Tensor] = {}
        for index, state in self.optimizer.state_dict()["state"].items():
            for name, value in state.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"{_STATE}{index}.{name}"] = value.detach().cpu().contiguous()
                elif isinstance(value, int | float) and not isinstance(value, bool):
                    tensors[f"{_STATE}{index}.{name}"] = torch.tensor(float(value))
                # None (SGD without momentum keeps no buffer) has nothing to keep
        tensors[_RNG_SHUFFLE] = self.generator.get_state()
        tensors[_RNG_TORCH] = torch.get_rng_state()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            tensors[_RNG_CUDA] = torch.cuda.get_rng_state()
        metadata = {
            "optimizer": type(self.optimizer).__name__,
            "shapes": json.dumps(_shapes(self.optimizer)),
        }
        path = Path(directory) / TRAINING_STATE_FILE
        save_file(tensors, str(path), metadata=metadata)
        return path

    def restore(self, directory: Path, *, generators: bool) -> str | None:
        """Load the optimizer state saved in ``directory`` into this optimizer when it
        fits; with ``generators``, also the random generators (an exact resume of the same
        trial; a pbt member or a child keeps its own seed's draws). Returns why nothing
        was restored, or None.

        The optimizer's hyperparameters stay this run's (``param_groups`` are not loaded):
        a pbt member that explored a new ``lr`` goes on with its old moments and the new
        rate, as in the PBT paper."""
        path = Path(directory) / TRAINING_STATE_FILE
        if not path.is_file():
            return f"{path.name} is not in the checkpoint"
        try:
            with safe_open(str(path), framework="pt") as f:
                metadata = f.metadata() or {}
                tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118
        except (SafetensorError, OSError) as exc:
            return f"cannot read {path}: {exc}"
        kind = type(self.optimizer).__name__
        if metadata.get("optimizer") != kind:
            return f"the checkpoint's optimizer is {metadata.get('optimizer')}, not {kind}"
        # Every parameter's shape must match one to one. A Net2Net-widened or deepened
        # child fails here on purpose: its new units have no history, and the moments of
        # the copied ones describe the parent's loss surface, not the child's reshaped one,
        # so a fresh optimizer is the correct start for it.
        if metadata.get("shapes") != json.dumps(_shapes(self.optimizer)):
            return "the parameters' shapes differ from the checkpoint's"
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith(_STATE):
                index, name = key[len(_STATE) :].split(".", 1)
                state.setdefault(int(index), {})[name] = value
        own = self.optimizer.state_dict()
        # load_state_dict moves each state tensor to its parameter's device and dtype
        self.optimizer.load_state_dict({"state": state, "param_groups": own["param_groups"]})
        if generators:
            self.generator.set_state(tensors[_RNG_SHUFFLE])
            torch.set_rng_state(tensors[_RNG_TORCH])
            if _RNG_CUDA in tensors and torch.cuda.is_available():
                torch.cuda.set_rng_state(tensors[_RNG_CUDA])
        return None
