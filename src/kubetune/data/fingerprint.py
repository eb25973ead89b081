"""A stable identity of the loaded data plus the settings that decide the splits."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import numpy as np

# Bump when the hashed layout changes, so old and new fingerprints never collide.
_FORMAT = 1


def compute_fingerprint(
    X: np.ndarray,
    y: np.ndarray,
    feature_names: tuple[str, ...],
    class_labels: tuple[str, ...],
    settings: Mapping[str, object],
) -> str:
    """sha256 hex of a JSON header (names, shapes, settings) then X and y as little-endian bytes.

    The source location is not hashed: the same data read from another path or format gives
    the same fingerprint.
    """
    X_le = np.ascontiguousarray(X, dtype=np.dtype("<f4"))
    y_le = np.ascontiguousarray(y, dtype=y.dtype.newbyteorder("<"))
    header = json.dumps(
        {
            "format": _FORMAT,
            "X": [X_le.dtype.str, list(X_le.shape)],
            "y": [y_le.dtype.str, list(y_le.shape)],
            "feature_names": list(feature_names),
            "class_labels": list(class_labels),
            "settings": dict(settings),
        },
        sort_keys=True,
    ).encode()
    digest = hashlib.sha256()
    # Length-prefix the header so no header/data boundary shift can give the same bytes.
    digest.update(len(header).to_bytes(8, "little"))
    digest.update(header)
    digest.update(X_le.data)
    digest.update(y_le.data)
    return digest.hexdigest()
