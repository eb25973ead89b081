"""What every source loader returns before encoding and splitting."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from kubetune.data.dataset import Task

# Lists of column names in messages are cut here so a wide table stays a readable line.
_MAX_LISTED = 20


@dataclass(frozen=True)
class RawTable:
    """A loaded table split into feature columns and the target column, still untyped."""

    name: str
    features: pd.DataFrame
    target: pd.Series
    task: Task | None = None  # known by the source (sklearn); None means detect it
    class_names: tuple[str, ...] = ()  # label of each integer class code, when the source knows
    default_image_shape: tuple[int, int, int] | None = None


def quoted(names: Iterable[object], limit: int = _MAX_LISTED) -> str:
    """``'a', 'b', 'c'`` — capped at ``limit`` names so errors stay one readable line."""
    items = [repr(str(name)) for name in names]
    if len(items) > limit:
        return ", ".join(items[:limit]) + f", ... ({len(items) - limit} more)"
    return ", ".join(items)
