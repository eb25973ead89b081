"""Shared test setup."""

from __future__ import annotations

import os

# Settings a developer's shell (or a CI job) may export must not steer the tests' runs.
for _name in ("KUBETUNE_STORAGE", "KUBETUNE_MODEL_REPO"):
    os.environ.pop(_name, None)
