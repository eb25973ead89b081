"""Models that predict on raw rows (issue 7, items 1-3): the stored feature encoder,
``load_model``/``kubetune predict``, the champion re-scored through its own encoder,
float64 + scaling for scikit-learn, and missing values."""

from __future__ import annotations

import hashlib
import json
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import kubetune
from kubetune.cli.main import main
from kubetune.core.spec import ExperimentSpec, parse_spec
from kubetune.core.trial import TrialRequest
from kubetune.data import load_dataset
from kubetune.data.preprocessing import MISSING, PREPROCESSING_FILE, FeatureEncoder
from kubetune.errors import DataError, InvalidConfigError, RepositoryError
from kubetune.inference import load_model_dir
from kubetune.repository import open_repository
from kubetune.steps.evaluate import evaluate
from kubetune.steps.push import PRODUCTION, push, score_champion
from kubetune.steps.retrieve import retrieve
from kubetune.steps.train import train_final
from kubetune.steps.trial import BuiltinTrial
from kubetune.trainers import NullReporter, get_trainer

LABELS = ("alpha", "beta", "gamma")
LOGREG = "sklearn.linear_model.LogisticRegression"


def _mixed(n: int = 150, seed: int = 0) -> pd.DataFrame:
    """Numbers (one badly scaled), text, bools, missing values and a 3-class string target."""
    rng = np.random.default_rng(seed)
    k = rng.integers(0, 3, n)
    x1 = k + rng.normal(0, 0.4, n)
    x1[rng.random(n) < 0.1] = np.nan
    color = np.array(["red", "green", "blue"], dtype=object)[(k + (rng.random(n) < 0.2)) % 3]
    color[rng.random(n) < 0.1] = None
    return pd.DataFrame(
        {
            "x1": x1,
            "big": rng.normal(5e4, 1e4, n),  # uninformative and huge: scaling matters
            "color": color,
            "flag": rng.random(n) < 0.5,
            "species": np.array(LABELS, dtype=object)[k],
        }
    )


def _csv(path: Path, frame: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def _spec(source: Path, target: str = "species", **trainer: Any) -> ExperimentSpec:
    return parse_spec(
        {
            "name": "mixed",
            "objective": {"metric": "val_accuracy"},
            "data": {"source": str(source), "target": target},
            "trainer": {"kind": "sklearn", "estimator": LOGREG, **trainer},
            "search_space": {"C": {"type": "float", "low": 0.1, "high": 10.0, "log": True}},
            "limits": {"max_trials": 2, "parallel": 1},
        }
    )


def _train_and_push(spec: ExperimentSpec, repo: Path, params: dict[str, Any]) -> Any:
    data = retrieve(spec)
    model = train_final(spec, data, params, None)
    metrics = evaluate(model, data)
    return push(
        spec,
        model,
        repo_uri=str(repo),
        params=params,
        metrics=metrics,
        data_fingerprint=data.fingerprint,
        gate_metric="test_accuracy",
        data=data,
    )


# --------------------------------------------------------------------------- the encoder


def test_encoder_finds_columns_by_name_and_round_trips_through_json() -> None:
    frame = _mixed(60)
    features = frame.drop(columns=["species"])
    encoder = FeatureEncoder.fit(features)
    X = encoder.transform(features)
    assert encoder.feature_names[:2] == ("x1", "big")
    assert f"color={MISSING}" in encoder.feature_names  # missing text is its own category
    assert np.isnan(X[:, 0]).any()  # missing numbers stay NaN for the model to handle

    shuffled = features[["flag", "color", "big", "x1"]].assign(extra="ignored")
    np.testing.assert_array_equal(encoder.transform(shuffled), X)

    again = FeatureEncoder.from_dict(json.loads(json.dumps(encoder.to_dict())))
    assert again == encoder
    np.testing.assert_array_equal(again.transform(shuffled), X)


def test_encoder_unseen_category_is_all_zeros_and_missing_column_is_named() -> None:
    features = _mixed(60).drop(columns=["species"])
    encoder = FeatureEncoder.fit(features)
    row = features.iloc[:1].assign(color="purple")
    X = encoder.transform(row)
    color = [i for i, n in enumerate(encoder.feature_names) if n.startswith("color=")]
    assert X[0, color].tolist() == [0.0] * len(color)
    with pytest.raises(DataError, match=r"missing column.*'big'"):
        encoder.transform(features.drop(columns=["big"]))
    with pytest.raises(DataError, match="'x1' must hold numbers"):
        encoder.transform(features.assign(x1="abc"))


def test_dataset_carries_encoder_with_training_medians_and_raw_test_rows(tmp_path: Path) -> None:
    data = load_dataset(_csv(tmp_path / "d.csv", _mixed()), target="species")
    assert data.encoder is not None and data.raw_test is not None
    assert data.encoder.feature_names == data.feature_names
    assert data.encoder.target is not None and data.encoder.target.labels == LABELS
    np.testing.assert_array_equal(data.encoder.transform(data.raw_test), data.X_test)
    x1 = data.encoder.columns[0]
    assert x1.fill == pytest.approx(float(np.nanmedian(data.X_train[:, 0])))


def test_integer_targets_keep_their_type(tmp_path: Path) -> None:
    frame = _mixed().assign(species=lambda f: f["species"].map({"alpha": 1, "beta": 5, "gamma": 7}))
    data = load_dataset(_csv(tmp_path / "d.csv", frame), target="species")
    assert data.encoder is not None and data.encoder.target is not None
    assert data.encoder.target.labels == (1, 5, 7)


# --------------------------------------------------------------------------- run -> predict


def test_run_push_then_predict_raw_rows_in_any_column_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    frame = _mixed()
    _csv(tmp_path / "train.csv", frame)
    (tmp_path / "spec.yaml").write_text(
        textwrap.dedent(
            f"""\
            name: mixed
            objective: {{metric: val_accuracy}}
            data: {{source: train.csv, target: species}}
            trainer: {{kind: sklearn, estimator: {LOGREG}}}
            search_space:
              C: {{type: float, low: 0.1, high: 10.0, log: true}}
            limits: {{max_trials: 2, parallel: 1}}
            """
        )
    )
    assert main(["run", "spec.yaml", "--model-repo", "repo"]) == 0
    assert (
        main(["models", "--model-repo", "repo", "pull", "mixed", "production", "--dest", "m"]) == 0
    )
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert PREPROCESSING_FILE in {f["path"] for f in manifest["files"]}  # hash-verified

    rows = frame.drop(columns=["species"])
    model = kubetune.load_model(tmp_path / "m")
    pred = model.predict(rows)
    assert set(pred) <= set(LABELS) and model.classes == LABELS
    assert (pred == frame["species"]).mean() > 0.7  # it learned, through imputation + scaling
    shuffled = rows[["flag", "big", "color", "x1"]].assign(comment="not a feature")
    np.testing.assert_array_equal(model.predict(shuffled), pred)
    np.testing.assert_allclose(model.predict_proba(shuffled), model.predict_proba(rows))

    from_repo = kubetune.load_model("mixed:production", repo=tmp_path / "repo")
    np.testing.assert_array_equal(from_repo.predict(shuffled), pred)

    # The CLI: same predictions, original labels, one probability column per label.
    _csv(tmp_path / "new.csv", shuffled)
    capsys.readouterr()
    assert main(["predict", "mixed", "new.csv", "--output", "out.csv", "--model-repo", "repo"]) == 0
    out = pd.read_csv(tmp_path / "out.csv")
    assert out["prediction"].tolist() == list(pred)
    assert list(out.columns) == ["prediction", *(f"proba_{label}" for label in LABELS)]
    assert main(["predict", "m", "new.csv", "--output", "dir.parquet"]) == 0  # a pulled dir
    assert pd.read_parquet(tmp_path / "dir.parquet")["prediction"].tolist() == list(pred)

    _csv(tmp_path / "broken.csv", shuffled.drop(columns=["color"]))
    assert (
        main(["predict", "mixed:1", "broken.csv", "--output", "o.csv", "--model-repo", "repo"]) == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("error:") and "broken.csv" in err and "'color'" in err
    assert not (tmp_path / "o.csv").exists()


def test_predict_of_an_unknown_model_is_an_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    _csv(tmp_path / "new.csv", _mixed(30))
    assert main(["predict", "nope", "new.csv", "--output", "o.csv", "--model-repo", "repo"]) == 2
    assert capsys.readouterr().err.startswith("error:")


# --------------------------------------------------------------------------- champion gate


def test_champion_is_rescored_through_its_own_encoder_on_reordered_columns(
    tmp_path: Path,
) -> None:
    frame = _mixed()
    first = _train_and_push(_spec(_csv(tmp_path / "a.csv", frame)), tmp_path / "repo", {"C": 1.0})
    recorded = first.manifest.metrics["test_accuracy"]
    # Same rows, other column order: another fingerprint, so the champion is re-scored.
    reordered = _spec(_csv(tmp_path / "b.csv", frame[["species", "color", "flag", "big", "x1"]]))
    data = retrieve(reordered)
    champion = kubetune.load_model("mixed:production", repo=tmp_path / "repo")
    assert score_champion(champion, data, "test_accuracy") == pytest.approx(recorded)

    second = _train_and_push(reordered, tmp_path / "repo", {"C": 1.0})
    assert "re-scored on this run's test split" in second.gate
    assert f"production v1 {recorded:.4g}" in second.gate


def test_a_corrupt_champion_is_reported_not_raised(tmp_path: Path) -> None:
    spec = _spec(_csv(tmp_path / "a.csv", _mixed()))
    repo = tmp_path / "repo"
    _train_and_push(spec, repo, {"C": 1.0})
    # Corrupt the stored file *and* its manifest entry, as a bad writer would: hashes pass.
    version_dir = next(repo.rglob("versions/000001"))
    model_file = version_dir / "model.skops"
    model_file.write_bytes(b"not a zip file")
    manifest_path = version_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())

    for entry in manifest["files"]:
        if entry["path"] == "model.skops":
            entry["sha256"] = hashlib.sha256(b"not a zip file").hexdigest()
            entry["size"] = len(b"not a zip file")
    manifest_path.write_text(json.dumps(manifest))
    other = _spec(_csv(tmp_path / "b.csv", _mixed(seed=1)))
    # The alias remembers the manifest it pointed at: the edit itself is caught.
    result = _train_and_push(other, repo, {"C": 1.0})
    assert result.promoted
    assert "production model cannot be read" in result.gate, result.gate
    assert "changed after an alias pointed at it" in result.gate

    # A writer that also rewrote the alias gets as far as loading the file, which fails.
    alias_path = next(repo.rglob("aliases/production.json"))
    alias = json.loads(alias_path.read_text())
    alias.update(version=1, manifest_sha256=hashlib.sha256(manifest_path.read_bytes()).hexdigest())
    alias_path.write_text(json.dumps(alias))
    result = _train_and_push(other, repo, {"C": 1.0})
    assert result.promoted
    assert "production v1 cannot be loaded" in result.gate, result.gate
    assert "BadZipFile" in result.gate and "mixed v1 of" in result.gate


def test_load_model_dir_wraps_a_bad_zip(tmp_path: Path) -> None:
    (tmp_path / "model.skops").write_bytes(b"PK not really a zip")
    (tmp_path / "model.json").write_text(json.dumps({"kind": "sklearn", "task": "x"}))
    with pytest.raises(RepositoryError, match="cannot load the model") as info:
        load_model_dir(tmp_path)
    assert isinstance(info.value.__cause__, zipfile.BadZipFile | ValueError)


def test_legacy_champion_without_preprocessing_is_checked_by_width(tmp_path: Path) -> None:
    spec = _spec(_csv(tmp_path / "a.csv", _mixed()))
    data = retrieve(spec)
    model = train_final(spec, data, {"C": 1.0}, None)
    repo = tmp_path / "repo"
    push(  # as before this change: no data, so no preprocessing.json
        spec,
        model,
        repo_uri=str(repo),
        params={},
        metrics=evaluate(model, data),
        data_fingerprint="old",
        gate_metric="test_accuracy",
    )
    legacy = kubetune.load_model("mixed", repo=repo)
    assert legacy.encoder is None
    with pytest.raises(DataError, match=PREPROCESSING_FILE):
        legacy.predict(data.raw_test)
    # Same width: re-scored with this run's encoding, as before.
    assert score_champion(legacy, data, "test_accuracy") is not None
    # Another width: cannot be scored, and the new model is promoted.
    narrow = _spec(_csv(tmp_path / "b.csv", _mixed().drop(columns=["color"])))
    result = _train_and_push(narrow, repo, {"C": 1.0})
    assert result.promoted and "without its feature layout" in result.gate
    assert open_repository(repo).resolve("mixed", PRODUCTION) == 2


# --------------------------------------------------------------------------- scikit-learn


def _badly_scaled(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    n = 200
    y = (rng.random(n) < 0.4).astype(int)
    frame = pd.DataFrame(
        {
            "tiny": (y + rng.normal(0, 0.5, n)) * 1e-4,  # the signal, at a tiny scale
            "huge": rng.normal(5e4, 1e4, n),
            "wide": rng.normal(0, 1e3, n),
            "y": y,
        }
    )
    return _csv(tmp_path / "scaled.csv", frame)


@pytest.mark.parametrize(("scale", "beats_majority"), [("auto", True), (False, False)])
def test_logistic_regression_needs_scaling(
    tmp_path: Path, scale: Any, beats_majority: bool
) -> None:
    data = load_dataset(_badly_scaled(tmp_path), target="y")
    trainer = get_trainer("sklearn", {"estimator": LOGREG, "preprocessing": {"scale": scale}})
    model = trainer.fit(
        {}, data, budget=None, seed=0, reporter=NullReporter(), metric="accuracy", final=True
    )
    accuracy = float((model.predict(data.X_test) == data.y_test).mean())
    majority = float(np.bincount(data.y_test).max() / len(data.y_test))
    assert (accuracy > majority + 0.1) is beats_majority, (accuracy, majority)


def test_hist_gradient_boosting_takes_nan_and_knn_imputes(tmp_path: Path) -> None:
    data = load_dataset(_csv(tmp_path / "d.csv", _mixed()), target="species")
    assert np.isnan(data.X_train).any()
    hgb = get_trainer(
        "sklearn", {"estimator": "sklearn.ensemble.HistGradientBoostingClassifier"}
    ).fit({"max_iter": 20}, data, budget=None, seed=0, reporter=NullReporter(), metric="accuracy")
    assert hgb.pipeline is hgb.estimator  # no imputer: NaN reaches the estimator
    knn = get_trainer("sklearn", {"estimator": "sklearn.neighbors.KNeighborsClassifier"}).fit(
        {}, data, budget=None, seed=0, reporter=NullReporter(), metric="accuracy"
    )
    assert [name for name, _ in knn.pipeline.steps] == ["impute", "scale", "model"]
    assert knn.predict(data.X_test).shape == (len(data.X_test),)
    # The Pipeline survives skops' allow-list.
    knn.save(tmp_path / "knn")
    loaded = get_trainer("sklearn").load(tmp_path / "knn")
    np.testing.assert_array_equal(loaded.predict(data.X_test), knn.predict(data.X_test))


def test_preprocessing_option_is_checked() -> None:
    with pytest.raises(InvalidConfigError, match=r"preprocessing\.scale"):
        get_trainer("sklearn", {"estimator": LOGREG, "preprocessing": {"scale": "maybe"}})
    with pytest.raises(InvalidConfigError, match="keys scale and/or impute"):
        get_trainer("sklearn", {"estimator": LOGREG, "preprocessing": {"scaling": True}})


def test_convergence_warnings_are_counted_in_the_trial_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _spec(_badly_scaled(tmp_path), "y", preprocessing={"scale": False})
    request = TrialRequest(study="mixed", number=0, params={"C": 1.0, "max_iter": 1}, seed=0)
    metrics = BuiltinTrial.from_spec(spec)(request, NullReporter())
    assert metrics["convergence_warnings"] >= 1
    assert "did not converge" in capsys.readouterr().err


def test_torch_mlp_imputes_missing_values(tmp_path: Path) -> None:
    data = load_dataset(_csv(tmp_path / "d.csv", _mixed()), target="species")
    model = get_trainer("torch-mlp").fit(
        {"units": 16}, data, budget=3, seed=0, reporter=NullReporter(), metric="accuracy"
    )
    proba = model.predict_proba(data.X_test)
    assert proba is not None and np.isfinite(proba).all()
    assert "x_fill" in model.architecture  # type: ignore[attr-defined]


def test_a_torch_model_loads_and_predicts_original_labels(tmp_path: Path) -> None:
    spec = parse_spec(
        {
            "name": "mixed-mlp",
            "objective": {"metric": "val_accuracy"},
            "data": {"source": str(_csv(tmp_path / "d.csv", _mixed())), "target": "species"},
            "trainer": {"kind": "torch-mlp", "epochs": 3},
            "search_space": {"units": 16},
        }
    )
    data = retrieve(spec)
    model = train_final(spec, data, {"units": 16}, 3)
    push(
        spec,
        model,
        repo_uri=str(tmp_path / "repo"),
        params={},
        metrics=evaluate(model, data),
        data_fingerprint=data.fingerprint,
        gate_metric="test_accuracy",
        data=data,
    )
    loaded = kubetune.load_model("mixed-mlp:latest", repo=tmp_path / "repo")
    assert data.raw_test is not None
    expected = np.asarray(LABELS, dtype=object)[model.predict(data.X_test)]
    np.testing.assert_array_equal(loaded.predict(data.raw_test.iloc[:, ::-1]), expected)


def test_a_champion_with_other_classes_cannot_be_scored(tmp_path: Path) -> None:
    frame = _mixed()
    repo = tmp_path / "repo"
    assert _train_and_push(_spec(_csv(tmp_path / "a.csv", frame)), repo, {"C": 1.0}).promoted
    two = frame[frame["species"] != "gamma"]
    result = _train_and_push(_spec(_csv(tmp_path / "b.csv", two)), repo, {"C": 1.0})
    assert result.promoted
    assert "cannot be scored on the new data: its classes" in result.gate
