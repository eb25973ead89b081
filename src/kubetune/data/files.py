"""Tables read from local CSV and Parquet files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pandas as pd

from kubetune.data.raw import RawTable, quoted
from kubetune.errors import DataError


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


def resolve_path(location: str, base_dir: Path) -> Path:
    """A relative path is relative to ``base_dir`` (the spec's folder), not the process cwd."""
    path = Path(location).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    return path.resolve()


def path_from_file_url(url: str) -> str:
    """``file:///abs/path.csv`` -> ``/abs/path.csv``."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise DataError(
            f"file:// URLs must hold an absolute path, like file:///data/train.csv; got {url!r}"
            " (for a relative path, give the path without file://)"
        )
    return unquote(parts.path)


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


def load_file_table(location: str, target: str | None, base_dir: Path) -> RawTable:
    """Read ``location`` and split off the ``target`` column."""
    path = resolve_path(location, base_dir)
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
