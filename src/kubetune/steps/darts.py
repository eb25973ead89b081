"""Step: DARTS' one-shot search, before the loop trains the derived architecture.

The supernet runs here, in the search step's process (it is one training, not a trial).
Its result is kept in the run folder (``darts.json``), so running the experiment again
resumes with the same architecture instead of searching again. While it runs, its state
is checkpointed every epoch in the artifact store (``studies/<study>/steps/darts/``), so a
controller killed mid-search resumes from the last saved epoch instead of epoch 0.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from kubetune.artifacts import TrialArtifacts
from kubetune.core.spec import ExperimentSpec
from kubetune.core.strategies.darts import FAMILIES, darts_space
from kubetune.core.strategies.factory import darts_options
from kubetune.errors import SpecError
from kubetune.storage import atomic_write_text

SUPPORTED_TRAINERS = tuple(FAMILIES)  # torch-mlp, torch-cnn


def darts_result(
    spec: ExperimentSpec, run_dir: Path, *, checkpoints: TrialArtifacts | None = None
) -> dict[str, Any]:
    """``{"config", "weights", "search_seconds", "epochs", "resumed_at"}`` of this spec's
    DARTS search, from ``run_dir/darts.json`` when an earlier run of the same space left
    one. ``checkpoints``: the artifact folder the search saves its state in every epoch
    and resumes from (None: no checkpoints)."""
    kind = spec.trainer.kind if spec.trainer is not None else None
    if kind not in SUPPORTED_TRAINERS:
        raise SpecError(
            f"trainer.kind: strategy darts supports {', '.join(SUPPORTED_TRAINERS)} (got {kind})"
        )
    dspace = darts_space(spec.space, kind)
    options = darts_options(spec.strategy.options)
    space_key = json.dumps(spec.model_dump(mode="json")["search_space"], sort_keys=True)
    path = run_dir / "darts.json"
    if path.exists():
        saved = json.loads(path.read_text())
        if saved.get("space") == space_key and saved.get("options") == options:
            return dict(saved["result"])
    from kubetune.steps.retrieve import retrieve
    from kubetune.trainers.darts import darts_search  # torch: the torch extra
    from kubetune.trainers.darts_checkpoint import SupernetCheckpoints

    trainer_opts = spec.trainer.options if spec.trainer is not None else {}
    data = retrieve(spec)
    resumable = None
    if checkpoints is not None:
        key = _search_key(spec, space_key, options, data.fingerprint)
        resumable = SupernetCheckpoints(checkpoints, key)
    result = darts_search(
        dspace,
        data,
        seed=spec.seed,
        device=trainer_opts.get("device"),
        threads=trainer_opts.get("threads"),
        checkpoints=resumable,
        **options,
    )
    out = asdict(result)
    run_dir.mkdir(parents=True, exist_ok=True)
    document = {"space": space_key, "options": options, "result": out}
    atomic_write_text(path, json.dumps(document, indent=2, sort_keys=True))
    return out


def _search_key(
    spec: ExperimentSpec, space_key: str, options: dict[str, Any], data_fingerprint: str
) -> str:
    """What a saved supernet state must share with this search to be resumed: the space,
    the search's options and seed, the data (its rows and split) and the trainer."""
    what = {
        "space": space_key,
        "options": options,
        "seed": spec.seed,
        "data": data_fingerprint,
        "trainer": spec.trainer.kind if spec.trainer is not None else None,
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()
