"""The problems' spaces (written in kubetune's spec words) in each peer's own terms."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna

Space = Mapping[str, Mapping[str, Any]]


def suggest(trial: optuna.Trial, space: Space) -> dict[str, Any]:
    """Draw every parameter of ``space`` with optuna's define-by-run API."""
    params: dict[str, Any] = {}
    for name, p in space.items():
        kind = p["type"]
        if kind == "float":
            params[name] = trial.suggest_float(name, p["low"], p["high"], log=p.get("log", False))
        elif kind == "int":
            params[name] = trial.suggest_int(name, p["low"], p["high"], log=p.get("log", False))
        elif kind == "categorical":
            params[name] = trial.suggest_categorical(name, p["choices"])
        else:
            raise ValueError(f"search space: parameter {name!r} has an unknown type {kind!r}")
    return params


def ray_space(space: Space) -> dict[str, Any]:
    """The same space as Ray Tune sampling primitives."""
    from ray import tune

    out: dict[str, Any] = {}
    for name, p in space.items():
        kind, log = p["type"], p.get("log", False)
        if kind == "float":
            out[name] = (tune.loguniform if log else tune.uniform)(p["low"], p["high"])
        elif kind == "int":  # Ray's upper bounds are exclusive
            out[name] = (tune.lograndint if log else tune.randint)(p["low"], p["high"] + 1)
        elif kind == "categorical":
            out[name] = tune.choice(list(p["choices"]))
        else:
            raise ValueError(f"search space: parameter {name!r} has an unknown type {kind!r}")
    return out


def scipy_distributions(space: Space, prefix: str = "") -> dict[str, Any]:
    """The same space as scipy distributions / lists, for scikit-learn's random searches."""
    from scipy import stats

    out: dict[str, Any] = {}
    for name, p in space.items():
        kind, log = p["type"], p.get("log", False)
        if kind == "float":
            low, high = p["low"], p["high"]
            out[prefix + name] = (
                stats.loguniform(low, high) if log else stats.uniform(low, high - low)
            )
        elif kind == "int":
            out[prefix + name] = (
                stats.randint(p["low"], p["high"] + 1)
                if not log
                else list(sorted({round(v) for v in _log_ints(p["low"], p["high"])}))
            )
        else:
            out[prefix + name] = list(p["choices"])
    return out


def _log_ints(low: int, high: int, points: int = 32) -> list[float]:
    import numpy as np

    return list(np.geomspace(low, high, points))
