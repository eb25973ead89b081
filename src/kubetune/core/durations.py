"""Durations written as ``90s``, ``10m``, ``1h30m`` or a number of seconds."""

from __future__ import annotations

import math
import re

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_FACTORS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_EXAMPLE = "a duration such as 90s, 10m or 1h30m"
# Timeouts reach thread waits and clocks, which refuse huge or infinite values.
MAX_SECONDS = 366 * 86400.0


def parse_duration(value: object) -> float:
    """Seconds in ``value``; raises ValueError with a readable message."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        # YAML gives lists, mappings and dates (2024-01-01) too.
        raise ValueError(f"expected {_EXAMPLE} (got {_kind(value)})")
    if isinstance(value, int | float):
        # float() of a 400-digit int overflows; anything past the maximum is refused anyway.
        seconds = math.nan if value != value else float(max(min(value, 2 * MAX_SECONDS), -1))
    else:
        text = value.strip().lower().replace(" ", "")
        shown = value if len(value) <= 40 else value[:37] + "..."
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        else:
            parts = _PART.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise ValueError(f"'{shown}' is not {_EXAMPLE}")
            seconds = sum(float(n) * _FACTORS[u] for n, u in parts)
    if math.isnan(seconds) or seconds <= 0:
        raise ValueError("must be a positive duration")
    if seconds > MAX_SECONDS:
        raise ValueError("must be at most 366d")
    return seconds


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    names = {bool: "true/false", list: "a list", dict: "a mapping"}
    return names.get(type(value), f"a {type(value).__name__}")
