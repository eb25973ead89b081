"""Tables read from CSV and Parquet files: local, or fetched from an object store."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from kubetune.data.raw import RawTable, quoted
from kubetune.errors import DataError
from kubetune.storage import open_object


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
        raise DataError(f"data source is a directory, not a file: {path}")
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
    frame.columns = [str(c) for c in frame.columns]
    return frame


def load_file_table(path: Path, target: str | None) -> RawTable:
    """Read the local file ``path`` and split off the ``target`` column."""
    path = path.resolve()
    frame = read_table(path)
    columns = list(frame.columns)
    if len(set(columns)) != len(columns):
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        raise DataError(f"{path} has duplicate column names: {quoted(dupes)}")
    if target is None:
        raise DataError(
            f"a target column is required for file {path}; its columns are: {quoted(columns)}"
        )
    if target not in frame.columns:
        raise DataError(
            f"target column {target!r} not found in {path}; its columns are: {quoted(columns)}"
        )
    return RawTable(
        name=path.stem,
        features=frame.drop(columns=[target]),
        target=frame[target],
    )


def load_stored_table(uri: str, target: str | None, base_dir: Path) -> RawTable:
    """Fetch the object ``uri`` from its store into a temporary folder, then read it."""
    store, key = open_object(uri, base_dir=base_dir)
    with tempfile.TemporaryDirectory(prefix="kubetune-data-") as tmp:
        local = Path(tmp) / key
        store.download(key, local)
        table = load_file_table(local, target)
    return table
