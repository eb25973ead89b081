"""What makes the trials of a study comparable, recorded on the study so a resume can check.

Trials are comparable when they optimise the same metric in the same direction over the
same space, on the same data, with the same trainer and fidelity. Each part is hashed on
its own, so a refusal can say which part changed. Limits and the strategy are not parts:
changing them on a resume is legitimate. The seed is, through the data: the data
fingerprint covers the split, which the seed draws.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import optuna

from kubetune.core.spec import ExperimentSpec
from kubetune.errors import SpecError

__all__ = ["FINGERPRINT_ATTR", "check_fingerprint", "study_fingerprint"]

FINGERPRINT_ATTR = "kubetune:fingerprint"


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def study_fingerprint(spec: ExperimentSpec, data_fingerprint: str | None = None) -> dict[str, str]:
    """Part name -> short hash. ``data_fingerprint`` is the data's sha256 when there is data."""
    dumped = spec.model_dump(mode="json", exclude_none=True)
    parts = {
        "objective": _digest([spec.objective.metric, spec.direction]),
        "search_space": _digest(dumped["search_space"]),
        "trainer": _digest(dumped.get("trainer")),
        "fidelity": _digest(_fidelity(dumped.get("fidelity"))),
    }
    if data_fingerprint is not None:
        parts["data"] = data_fingerprint[:16]
    return parts


def _fidelity(dumped: dict[str, Any] | None) -> dict[str, Any] | None:
    # ``kind: param`` is what every fidelity meant before kinds existed: same digest as then.
    if dumped and dumped.get("kind") == "param":
        return {k: v for k, v in dumped.items() if k != "kind"}
    return dumped


def check_fingerprint(
    study: optuna.Study, fingerprint: dict[str, str], *, accept_changes: bool = False
) -> None:
    """Record ``fingerprint`` on a new study; refuse to resume one recorded differently.

    A study from before fingerprints were recorded adopts this one. With
    ``accept_changes`` the new fingerprint replaces the old one (the user's explicit call).
    """
    stored = study.user_attrs.get(FINGERPRINT_ATTR)
    if isinstance(stored, dict) and not accept_changes:
        changed = sorted(
            part for part in fingerprint.keys() & stored.keys() if fingerprint[part] != stored[part]
        )
        if changed:
            raise SpecError(
                f"storage: the study '{study.study_name}' holds trials run with another"
                f" {', '.join(changed)}; they cannot be compared with this spec's trials."
                " Use another experiment name (or storage) for a new study, or resume"
                " anyway with --accept-changed-study"
            )
        if fingerprint.keys() <= stored.keys():
            return
    study.set_user_attr(
        FINGERPRINT_ATTR, {**(stored if isinstance(stored, dict) else {}), **fingerprint}
    )
