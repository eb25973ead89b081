"""Tables read from CSV and Parquet files: local, or fetched from an object store."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from kubetune.data.raw import RawTable, quoted
from kubetune.errors import DataError
from kubetune.storage import ObjectStore, open_object, open_store


def _read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path)


def _read_parquet(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path)


# A new file format is one reader here.
_READERS: dict[str, Callable[[Path], pd.DataFrame]] = {
    ".csv": _read_csv,
    ".parquet": _read_parquet,
}
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(_READERS)


def read_table(path: Path) -> pd.DataFrame:
    """Read a whole file; every way it can fail becomes a DataError naming the path."""
    if not path.exists():
        raise DataError(f"data file not found: {path}")
    if path.is_dir():
        raise DataError(
            f"data source is a directory, not a file: {path} (end it with '/' to read every"
            " CSV/Parquet file in it as one table)"
        )
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(
            f"unsupported data file type {path.suffix or '(no extension)'!r} for {path};"
            f" supported: {', '.join(SUPPORTED_EXTENSIONS)}"
        )
    try:
        frame = reader(path)
    # pandas/pyarrow report bad content as ValueError subclasses (ParserError, EmptyDataError,
    # UnicodeDecodeError, ArrowInvalid), unreadable files as OSError, unsupported Parquet
    # types as NotImplementedError.
    except (OSError, ValueError, NotImplementedError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot read data file {path}: {detail}") from exc
    except MemoryError:
        # the table (or one huge field) does not fit: one clear line, not a traceback
        size = path.stat().st_size
        raise DataError(
            f"cannot read data file {path}: it does not fit in this process's memory"
            f" ({size} bytes on disk)"
        ) from None
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _table(frame: pd.DataFrame, target: str | None, where: str, name: str) -> RawTable:
    """Split the ``target`` column off ``frame`` (read from ``where``, for messages)."""
    columns = list(frame.columns)
    if len(set(columns)) != len(columns):
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        raise DataError(f"{where} has duplicate column names: {quoted(dupes)}")
    if target is None:
        raise DataError(
            f"a target column is required for file {where}; its columns are: {quoted(columns)}"
        )
    if target not in frame.columns:
        raise DataError(
            f"target column {target!r} not found in {where}; its columns are: {quoted(columns)}"
        )
    return RawTable(name=name, features=frame.drop(columns=[target]), target=frame[target])


def load_file_table(path: Path, target: str | None) -> RawTable:
    """Read the local file ``path`` and split off the ``target`` column."""
    path = path.resolve()
    return _table(read_table(path), target, str(path), path.stem)


def _read_stored(store: ObjectStore, key: str, tmp: Path) -> pd.DataFrame:
    """Download one object and read it; errors name its URI, not the temporary copy."""
    local = tmp / key
    store.download(key, local)
    try:
        return read_table(local)
    except DataError as exc:
        raise DataError(str(exc).replace(str(local), store.uri(key))) from exc


def load_stored_table(uri: str, target: str | None, base_dir: Path) -> RawTable:
    """Fetch the object ``uri`` from its store into a temporary folder, then read it."""
    store, key = open_object(uri, base_dir=base_dir)
    with tempfile.TemporaryDirectory(prefix="kubetune-data-") as tmp:
        frame = _read_stored(store, key, Path(tmp))
    return _table(frame, target, uri, Path(key).stem)


def load_prefix_table(uri: str, target: str | None, base_dir: Path) -> RawTable:
    """Every CSV/Parquet object under the prefix ``uri`` (ending in ``/``), read as one
    table: rows in the order of the keys (sorted), so the data fingerprint is stable.
    Other objects (``_SUCCESS`` markers, notes) are ignored; every file must have the same
    columns. Works for any store: ``s3://bucket/data/train/``, ``file:///data/train/``,
    ``./data/train/``."""
    store = open_store(uri.rstrip(), base_dir=base_dir)
    keys = [k for k in store.list() if Path(k).suffix.lower() in _READERS]
    if not keys:
        raise DataError(f"no {' or '.join(SUPPORTED_EXTENSIONS)} files under {uri}")
    frames: list[pd.DataFrame] = []
    with tempfile.TemporaryDirectory(prefix="kubetune-data-") as tmp:
        for key in keys:
            frame = _read_stored(store, key, Path(tmp))
            if frames and set(frame.columns) != set(frames[0].columns):
                raise DataError(
                    f"{store.uri(key)} has columns {quoted(frame.columns)}, but"
                    f" {store.uri(keys[0])} has {quoted(frames[0].columns)}; every file under"
                    f" {uri} must have the same columns"
                )
            frames.append(frame[list(frames[0].columns)] if frames else frame)
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    name = uri.rstrip().rstrip("/").rsplit("/", 1)[-1] or "data"
    return _table(frame, target, uri, name)
