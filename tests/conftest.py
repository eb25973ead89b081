"""Shared test setup."""

from __future__ import annotations

import os

# Settings a developer's shell (or a CI job) may export must not steer the tests' runs.
for _name in ("KUBETUNE_STORAGE", "KUBETUNE_MODEL_REPO", "KUBETUNE_ARTIFACTS"):
    os.environ.pop(_name, None)


def restore_default_sigint() -> None:
    """``preexec_fn`` for children that a test interrupts with SIGINT.

    A shell that starts a job in the background (``cmd &``) makes it ignore SIGINT, and
    children inherit that; Python then never raises KeyboardInterrupt. Ctrl-C tests must
    not depend on how the suite was started.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
