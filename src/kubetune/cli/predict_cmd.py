"""``kubetune predict NAME[:REF]|DIR DATA --output FILE``: predictions of a stored model."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from kubetune.data.files import read_table
from kubetune.errors import DataError
from kubetune.inference import load_model

_WRITERS = {".csv", ".parquet"}


def run_predict(model_ref: str, data: str, output: str, model_repo: str) -> int:
    """Writes one row per input row: ``prediction`` and, for classifiers with
    probabilities, ``proba_<label>`` per class."""
    out = Path(output)
    if out.suffix.lower() not in _WRITERS:
        raise DataError(f"--output must end in .csv or .parquet, got {output!r}")
    # A pulled directory, else NAME[:REF] in the repository; checked before reading data.
    local = Path(model_ref).expanduser()
    model = load_model(local) if local.is_dir() else load_model(model_ref, repo=model_repo)
    frame = read_table(Path(data).expanduser().resolve())
    try:
        result = pd.DataFrame({"prediction": model.predict(frame)})
        proba = model.predict_proba(frame)
    except DataError as exc:
        raise DataError(f"{data}: {exc}") from None
    if proba is not None and model.classes:
        for i, label in enumerate(model.classes):
            result[f"proba_{label}"] = proba[:, i]
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".parquet":
        result.to_parquet(out, index=False)
    else:
        result.to_csv(out, index=False)
    print(f"wrote {len(result)} predictions of {model.source} to {output}")
    return 0
