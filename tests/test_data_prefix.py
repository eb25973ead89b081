"""A data source that is a prefix (``.../train/``): every CSV/Parquet file under it read as
one table. ``check_prefix_source`` runs on a local folder here and on simulated S3 (moto
server) in ``test_s3.py``."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from kubetune.data import load_dataset
from kubetune.errors import DataError
from kubetune.storage import LocalObjectStore, ObjectStore


def _csv(rows: range) -> bytes:
    return "".join(["x1,x2,label\n", *(f"{i % 7},{i % 3},{'ab'[i % 2]}\n" for i in rows)]).encode()


def _parquet(rows: range) -> bytes:
    frame = pd.DataFrame(
        {
            "label": ["ab"[i % 2] for i in rows],
            "x2": [i % 3 for i in rows],
            "x1": [i % 7 for i in rows],
        }
    )  # other column order: matched by name
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


def check_prefix_source(store: ObjectStore, uri: str, tmp_path: Path) -> None:
    """``uri`` is ``store``'s root as the user writes it (ending in ``/``)."""
    store.put_bytes("train/part-0.csv", _csv(range(0, 40)))
    store.put_bytes("train/part-1.parquet", _parquet(range(40, 70)))
    store.put_bytes("train/more/part-2.csv", _csv(range(70, 100)))
    store.put_bytes("train/_SUCCESS", b"")  # not a table: ignored
    dataset = load_dataset(uri + "train/", target="label")
    assert dataset.name == "train"
    assert len(dataset.X_train) + len(dataset.X_val) + len(dataset.X_test) == 100
    # Keys in sorted order ("more/part-2.csv" first): the same rows as one file in that
    # order give the same fingerprint, so a re-run on the same prefix compares like with like.
    whole = pd.concat(
        [
            pd.read_csv(io.BytesIO(_csv(range(70, 100)))),
            pd.read_csv(io.BytesIO(_csv(range(0, 40)))),
            pd.read_parquet(io.BytesIO(_parquet(range(40, 70))))[["x1", "x2", "label"]],
        ]
    )
    single = tmp_path / "whole.csv"
    whole.to_csv(single, index=False)
    assert load_dataset(single, target="label").fingerprint == dataset.fingerprint
    assert load_dataset(uri + "train/", target="label").fingerprint == dataset.fingerprint

    store.put_bytes("bad-columns/a.csv", _csv(range(0, 10)))
    store.put_bytes("bad-columns/b.csv", b"x1,other,label\n1,2,a\n")
    with pytest.raises(DataError, match=r"bad-columns/b\.csv has columns .* same columns"):
        load_dataset(uri + "bad-columns/", target="label")
    store.put_bytes("unreadable/a.parquet", b"not parquet at all")
    with pytest.raises(DataError, match=r"cannot read data file .*unreadable/a\.parquet"):
        load_dataset(uri + "unreadable/", target="label")
    with pytest.raises(DataError, match=r"no \.csv or \.parquet files under .*empty/"):
        load_dataset(uri + "empty/", target="label")


def test_prefix_source_on_a_local_folder(tmp_path: Path) -> None:
    root = tmp_path / "data"
    check_prefix_source(LocalObjectStore(root), f"{root}/", tmp_path)
    with pytest.raises(DataError, match="end it with '/'"):
        load_dataset(root / "train", target="label")
