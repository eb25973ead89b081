"""Checks of an ``executor:`` section's options, shared by every executor's ``from_context``.

Each raises :class:`~kubetune.errors.SpecError` naming the field (``executor.<option>``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from kubetune.errors import SpecError

__all__ = ["check_known", "positive_number", "whole_number"]


def check_known(kind: str, options: Mapping[str, Any], known: Collection[str]) -> None:
    unknown = sorted(set(options) - set(known))
    if unknown:
        listing = ", ".join(sorted(known)) or "none"
        raise SpecError(f"executor.{unknown[0]}: unknown option for {kind} (known: {listing})")


def whole_number(options: Mapping[str, Any], key: str, minimum: int = 1) -> int | None:
    value = options.get(key)
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int) or value < minimum
    ):
        raise SpecError(f"executor.{key}: must be an integer >= {minimum} (got {value!r})")
    return value


def positive_number(options: Mapping[str, Any], key: str) -> float | None:
    value = options.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise SpecError(f"executor.{key}: must be a positive number (got {value!r})")
    return float(value)
