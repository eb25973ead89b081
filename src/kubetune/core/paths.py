"""The one parser of locations: a plain path or a URI.

Wherever kubetune asks for a location (data source, model repository, run folder, study
file) it accepts:

- a plain path, relative to a base folder the caller names (``models``, ``~/x``, ``/abs``);
- ``file:///abs/path``, ``file://localhost/abs/path`` or the short ``file:/abs/path``;
- ``<scheme>://...`` for other stores (``s3://bucket/prefix``). This module only
  recognises those; opening them is the storage registry's job (``kubetune.storage``).

It lives in core, with the standard library only, so the spec resolves its paths without
importing the adapter layer; ``kubetune.storage.uri`` builds on it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from kubetune.errors import StorageError

__all__ = ["file_uri_path", "local_path", "uri_scheme"]

# "scheme://..." plus the short "file:/abs" form; anything else is a plain path, so a
# Windows-style "C:\\x" or a file named "a:b" is never mistaken for a URI.
_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://|(file):/", re.IGNORECASE)


def uri_scheme(location: str) -> str | None:
    """The lower-case scheme of ``location``, or None for a plain path."""
    match = _SCHEME_RE.match(location)
    if match is None:
        return None
    return (match.group(1) or match.group(2)).lower()


def file_uri_path(uri: str) -> Path:
    """``file:///abs/p%20q`` (or ``file://localhost/...``, ``file:/...``) -> ``/abs/p q``."""
    parts = urlsplit(uri)
    if (
        parts.scheme.lower() != "file"
        or parts.netloc.lower() not in ("", "localhost")
        or not parts.path.startswith("/")
    ):
        raise StorageError(
            f"invalid file URI {uri!r}: it needs an absolute path, like file:///data/train.csv"
            " (for a relative path, give the path without file://)"
        )
    return Path(unquote(parts.path))


def local_path(location: str | os.PathLike[str], base_dir: Path) -> Path | None:
    """The absolute local path ``location`` names, or None when it has another scheme.

    A plain path is relative to ``base_dir`` (``~`` is expanded); symlinks are not resolved.
    """
    text = os.fspath(location)
    scheme = uri_scheme(text)
    if scheme == "file":
        return file_uri_path(text)
    if scheme is not None:
        return None
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = Path(base_dir).absolute() / path
    return path
