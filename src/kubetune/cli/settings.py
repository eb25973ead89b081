"""Where a setting comes from: a flag, else the environment, else the spec, else a default.

The environment suits what differs between machines but not between experiments (a
cluster's study database, a team's model repository); a flag wins for one invocation.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kubetune.core.durations import parse_duration

if TYPE_CHECKING:  # the spec (pydantic, optuna) loads only when a command needs it
    from kubetune.core.spec import ExperimentSpec

ENV_STORAGE = "KUBETUNE_STORAGE"
ENV_MODEL_REPO = "KUBETUNE_MODEL_REPO"
ENV_ARTIFACTS = "KUBETUNE_ARTIFACTS"

__all__ = [
    "ENV_ARTIFACTS",
    "ENV_MODEL_REPO",
    "ENV_STORAGE",
    "duration",
    "first_set",
    "load_run_spec",
    "non_negative_int",
]


def first_set(flag: str | None, env_name: str, environ: Mapping[str, str]) -> str | None:
    """The flag's value when given, else the (non-empty) environment variable, else None."""
    if flag is not None:
        return flag
    return environ.get(env_name) or None


def load_run_spec(
    path: str,
    *,
    environ: Mapping[str, str],
    limits: Mapping[str, Any] | None = None,
    storage: str | None = None,
    seed: int | None = None,
    executor: str | None = None,
) -> ExperimentSpec:
    """The spec at ``path`` with the command line's overrides and the environment applied."""
    from kubetune.core.spec import load_spec

    spec = load_spec(path)
    changes = {k: v for k, v in (limits or {}).items() if v is not None}
    if changes:
        spec = spec.updated("limits", changes, source=path)
    fields: dict[str, Any] = {}
    url = first_set(storage, ENV_STORAGE, environ)
    if url is not None:
        fields["storage"] = url
    if seed is not None:
        fields["seed"] = seed
    if executor is not None:
        from kubetune.errors import SpecError
        from kubetune.executors import EXECUTOR_KINDS

        if executor not in EXECUTOR_KINDS:
            known = ", ".join(EXECUTOR_KINDS)
            raise SpecError(f"--executor: unknown executor '{executor}' (known: {known})")
    if executor is not None and executor != spec.executor.kind:
        # The spec's executor options belong to its own kind; another kind starts bare.
        fields["executor"] = {"kind": executor}
    return spec.replaced(fields, source=path) if fields else spec


# argparse types: a bad value is a usage error naming the flag, exit 2, no traceback.


def duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _int_at_least(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be >= {minimum} (got {value})")
    return value


def non_negative_int(text: str) -> int:
    return _int_at_least(text, 0)
