"""Pipeline run parameters from ``--param NAME=VALUE``, typed by the pipeline's own
declaration (``root.inputDefinitions.parameters`` of the compiled IR), so ``--param
max_trials=20`` reaches KFP as the integer 20 and a misspelt name is refused before a run
is created."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from kubetune.errors import KubetuneError

__all__ = ["ParamError", "declared_parameters", "parse_params"]


class ParamError(KubetuneError):
    """A ``--param`` is malformed, unknown to the pipeline, or not of its type."""


def declared_parameters(pipeline_spec: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Name -> declaration (``parameterType``, ``defaultValue``, ``isOptional``)."""
    root = pipeline_spec.get("root") or {}
    params = (root.get("inputDefinitions") or {}).get("parameters") or {}
    return {str(name): dict(decl or {}) for name, decl in params.items()}


def parse_params(pairs: Sequence[str], pipeline_spec: Mapping[str, Any] | None) -> dict[str, Any]:
    """``["k=v", ...]`` -> typed values. Without a spec (not known) values stay strings."""
    declared = declared_parameters(pipeline_spec) if pipeline_spec is not None else None
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ParamError(f"--param {pair!r}: expected NAME=VALUE")
        if declared is None:
            values[name] = text
            continue
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise ParamError(
                f"--param {name}: the pipeline has no such parameter (it has: {known})"
            )
        values[name] = _typed(name, text, str(declared[name].get("parameterType", "STRING")))
    if declared is not None:
        missing = sorted(
            name
            for name, decl in declared.items()
            if name not in values and "defaultValue" not in decl and not decl.get("isOptional")
        )
        if missing:
            raise ParamError("the pipeline needs " + ", ".join(f"--param {m}=..." for m in missing))
    return values


def _typed(name: str, text: str, kind: str) -> Any:
    try:
        if kind == "NUMBER_INTEGER":
            return int(text)
        if kind == "NUMBER_DOUBLE":
            return float(text)
        if kind == "BOOLEAN":
            lowered = text.strip().lower()
            if lowered in ("true", "1", "yes"):
                return True
            if lowered in ("false", "0", "no"):
                return False
            raise ValueError(text)
        if kind in ("STRUCT", "LIST"):
            value = json.loads(text)
            expected = dict if kind == "STRUCT" else list
            if not isinstance(value, expected):
                raise ValueError(text)
            return value
    except ValueError:
        spelled = {
            "NUMBER_INTEGER": "an integer",
            "NUMBER_DOUBLE": "a number",
            "BOOLEAN": "true or false",
            "STRUCT": "a JSON object",
            "LIST": "a JSON list",
        }[kind]
        raise ParamError(f"--param {name}={text!r}: must be {spelled}") from None
    return text
