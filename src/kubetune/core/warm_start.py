"""Warm start: a new study's first trials are the best configs earlier studies found.

A recurring re-tuning run searches again on new data. What earlier runs learned (which
configs scored well) is a better first guess than a random draw, so their best configs,
those still valid in the current space, are enqueued to run first. The sampler then goes
on from there as usual.

Candidates come from the earlier studies of the experiment in the same storage
(``<experiment>`` and ``<experiment>.<data hash>``), or, when the storage did not persist
(a fresh pod per pipeline run), from the caller (the model repository's manifests).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FixedTrial, TrialState

from kubetune.core.attrs import WARM_START
from kubetune.core.optuna_compat import storage_of
from kubetune.core.space import SearchSpace

if TYPE_CHECKING:
    from kubetune.core.spec import ExperimentSpec

__all__ = [
    "Candidate",
    "enqueue_warm_start",
    "fit_to_space",
    "from_studies",
    "study_family",
    "warm_start_study",
]

#: Separates the experiment from the data hash in a re-tuning study's name. Not allowed in
#: an experiment name, so ``digits.<hash>`` can never belong to an experiment ``digits-2``.
FAMILY_SEPARATOR = "."


@dataclass(frozen=True)
class Candidate:
    """A config an earlier run tried: flat (optuna) or structured (manifest) params."""

    params: Mapping[str, Any]
    value: float | None
    source: str  # where it came from, recorded on the enqueued trial


def study_family(experiment: str, data_fingerprint: str) -> str:
    """The study of ``experiment`` on one data version."""
    return f"{experiment}{FAMILY_SEPARATOR}{data_fingerprint[:12]}"


def _in_family(name: str, experiment: str) -> bool:
    return name == experiment or name.startswith(experiment + FAMILY_SEPARATOR)


def from_studies(
    storage: BaseStorage, experiment: str, *, exclude: str, direction: str
) -> list[Candidate]:
    """Completed trials of the experiment's other studies in ``storage``, best first."""
    found: list[Candidate] = []
    for study in storage.get_all_studies():
        if study.study_name == exclude or not _in_family(study.study_name, experiment):
            continue
        if len(study.directions) != 1 or study.direction.name.lower() != direction:
            continue  # another objective: its ranking means nothing here
        study_id = storage.get_study_id_from_name(study.study_name)
        for trial in storage.get_all_trials(
            study_id, deepcopy=False, states=(TrialState.COMPLETE,)
        ):
            if trial.value is not None and math.isfinite(trial.value):
                found.append(
                    Candidate(trial.params, trial.value, f"{study.study_name}#{trial.number}")
                )
    return rank(found, direction)


def rank(candidates: Iterable[Candidate], direction: str) -> list[Candidate]:
    """Best value first (stable: equal values keep their order); no value goes last."""
    sign = -1.0 if direction == "maximize" else 1.0
    return sorted(
        candidates, key=lambda c: (c.value is None, sign * c.value if c.value is not None else 0)
    )


def fit_to_space(
    space: SearchSpace, candidates: Sequence[Candidate], limit: int
) -> list[tuple[dict[str, Any], str]]:
    """Up to ``limit`` distinct configs, as flat params of ``space``, in candidate order.

    A candidate is kept only if every parameter the current space would suggest for it has
    a value inside the current range or choices (``FixedTrial`` replays the space on it);
    parameters the space no longer has are dropped, one it gained makes the config invalid.
    """
    chosen: list[tuple[dict[str, Any], str]] = []
    seen: set[tuple[tuple[str, str], ...]] = set()
    for candidate in candidates:
        if len(chosen) >= limit:
            break
        flat = _replay(space, _flatten(space, candidate.params))
        if flat is None:
            continue
        key = tuple(sorted((k, repr(v)) for k, v in flat.items()))
        if key not in seen:
            seen.add(key)
            chosen.append((flat, candidate.source))
    return chosen


def _flatten(space: SearchSpace, params: Mapping[str, Any]) -> dict[str, Any]:
    """Structured params (a list per per-layer parameter) -> optuna's flat names."""
    flat: dict[str, Any] = {}
    specs = space.params
    for name, value in params.items():
        spec = specs.get(name)
        if spec is not None and getattr(spec, "per_layer", None) and isinstance(value, list):
            flat.update({f"{name}_{i}": v for i, v in enumerate(value)})
        else:
            flat[name] = value
    return flat


def _replay(space: SearchSpace, flat: dict[str, Any]) -> dict[str, Any] | None:
    trial = FixedTrial(flat)
    with warnings.catch_warnings():
        # FixedTrial only warns about a value outside the distribution: here it disqualifies.
        warnings.simplefilter("error")
        try:
            space.suggest(trial)
        except (ValueError, TypeError, Warning):
            return None
    return dict(trial.params)


def enqueue_warm_start(study: optuna.Study, configs: Sequence[tuple[dict[str, Any], str]]) -> int:
    """Queue ``configs`` as the study's next trials, each marked with its source."""
    for params, source in configs:
        study.enqueue_trial(params, user_attrs={WARM_START: source}, skip_if_exists=False)
    return len(configs)


def warm_start_study(
    spec: ExperimentSpec, study: optuna.Study, limit: int, fallback: Sequence[Candidate] = ()
) -> int:
    """Queue up to ``limit`` of the best configs of the experiment's other studies in the
    same storage (else of ``fallback``) as ``study``'s first trials; how many were queued."""
    candidates = from_studies(
        storage_of(study), spec.name, exclude=study.study_name, direction=spec.direction
    )
    configs = fit_to_space(spec.space, candidates or list(fallback), limit)
    if spec.limits.max_trials is not None:
        configs = configs[: spec.limits.max_trials]  # none left waiting after this run
    return enqueue_warm_start(study, configs)
