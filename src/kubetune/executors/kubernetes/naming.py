"""Deterministic names and labels for trial Jobs.

The Job name is a pure function of (experiment, study, trial number, attempt): a restarted
controller computes the same name, finds the Job it created before and adopts it, and a
second ``create`` of the same attempt answers 409 instead of starting a duplicate pod.
"""

from __future__ import annotations

import hashlib
import re

__all__ = [
    "ANNOTATION_PREFIX",
    "LABEL_ATTEMPT",
    "LABEL_EXPERIMENT",
    "LABEL_MANAGED_BY",
    "LABEL_STUDY",
    "LABEL_TRIAL",
    "LABEL_WORKER",
    "job_name",
    "label_value",
    "worker_job_name",
]

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_EXPERIMENT = "kubetune.dev/experiment"
LABEL_STUDY = "kubetune.dev/study"
LABEL_TRIAL = "kubetune.dev/trial"
LABEL_ATTEMPT = "kubetune.dev/attempt"
LABEL_WORKER = "kubetune.dev/worker"  # the slot index of a warm worker pod's Job
ANNOTATION_PREFIX = "kubetune.dev/"

_MAX_NAME = 63  # a Job's name becomes its pods' label value: at most 63 characters
_DIGEST = 8


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:_DIGEST]


def _dns1123(text: str) -> str:
    """Lower-case alphanumerics and '-', starting and ending with an alphanumeric."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-")


def job_name(experiment: str, study: str, number: int, attempt: int) -> str:
    """``kt-<experiment>[-<study>]-t<number>-a<attempt>``, a valid DNS-1123 label of at
    most 63 characters; a long or rewritten stem is cut and suffixed with a hash of the
    original names, so two experiments never share a name by truncation."""
    return _name(experiment, study, f"-t{number}-a{attempt}")


def worker_job_name(experiment: str, study: str, index: int, generation: int) -> str:
    """``kt-<experiment>[-<study>]-w<index>-g<generation>``: warm worker ``index``; a
    replacement of a dead worker pod gets the next generation (a new Job, a new name)."""
    return _name(experiment, study, f"-w{index}-g{generation}")


def _name(experiment: str, study: str, suffix: str) -> str:
    stem_source = experiment if study == experiment else f"{experiment}-{study}"
    stem = _dns1123(stem_source) or "trial"
    name = f"kt-{stem}{suffix}"
    if len(name) <= _MAX_NAME and stem == stem_source:
        return name
    room = _MAX_NAME - len("kt-") - len(suffix) - _DIGEST - 1
    cut = stem[: max(room, 0)].rstrip("-")
    return (
        f"kt-{cut}-{_digest(stem_source)}{suffix}" if cut else f"kt-{_digest(stem_source)}{suffix}"
    )


def label_value(text: str) -> str:
    """A valid label value for ``text`` (<= 63 characters; hashed when it had to change)."""
    clean = re.sub(r"[^A-Za-z0-9._-]", "-", text).strip("-_.")
    if clean == text and len(clean) <= _MAX_NAME:
        return clean
    cut = clean[: _MAX_NAME - _DIGEST - 1].rstrip("-_.")
    return f"{cut}-{_digest(text)}" if cut else _digest(text)
