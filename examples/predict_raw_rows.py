"""Train on your own table, then predict raw rows with the stored model.

    python examples/predict_raw_rows.py [WORKDIR]

Makes a small CSV of mixed columns (numbers, text, a bool, missing values) with a 3-class
string target, runs the whole job on it (search, final training, push to a model
repository), then loads the production model back and predicts on new raw rows given in
another column order, with an extra column the model never saw. About 20 s on 2 cores.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

import kubetune
from kubetune.core.spec import load_spec
from kubetune.steps.run import run_experiment

SPEC = """\
name: plants
objective: {metric: val_accuracy}
data: {source: plants.csv, target: species}
trainer: {kind: sklearn, estimator: sklearn.ensemble.HistGradientBoostingClassifier}
search_space:
  learning_rate: {type: float, low: 0.02, high: 0.3, log: true}
  max_leaf_nodes: {type: int, low: 4, high: 32}
strategy: {name: tpe}
limits: {max_trials: 8, parallel: 2}
"""


def make_table(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    species = rng.choice(["fern", "moss", "palm"], size=rows)
    height = np.where(species == "palm", 8.0, np.where(species == "fern", 1.0, 0.1))
    frame = pd.DataFrame(
        {
            "height_m": height * rng.uniform(0.7, 1.3, rows),
            "soil": np.where(species == "moss", "wet", rng.choice(["dry", "loam"], rows)),
            "flowers": rng.random(rows) < 0.1,
            "species": species,
        }
    )
    frame.loc[rng.random(rows) < 0.1, "height_m"] = np.nan  # missing values are fine
    return frame


def main(workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)  # the run's folder (kubetune-runs/) goes where the data is
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # kubetune prints its own progress
    make_table(300, seed=0).to_csv(workdir / "plants.csv", index=False)
    (workdir / "plants.yaml").write_text(SPEC)
    summary = run_experiment(
        load_spec(workdir / "plants.yaml"), model_repo=str(workdir / "model-repo")
    )
    print(f"pushed {summary.model_uri} (test accuracy {summary.test_metrics['accuracy']:.3f})")

    model = kubetune.load_model("plants:production", repo=workdir / "model-repo")
    new = make_table(5, seed=1)
    truth = new.pop("species")
    new["note"] = "never seen by the model"  # extra columns are ignored
    new = new[["soil", "note", "flowers", "height_m"]]  # any column order
    print(pd.DataFrame({"predicted": model.predict(new), "actual": truth}))
    print(pd.DataFrame(model.predict_proba(new), columns=model.classes).round(3))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="plants-")))
