"""Save coverage data from a trial process that will be killed rather than exit.

Under ``make coverage`` every Python process is measured (coverage's subprocess patch), but
coverage writes its data at interpreter exit, and worker processes never exit: the local
executor SIGKILLs them at close because a clean shutdown costs ~0.4 s each. So a trial
process saves after each trial instead. Without coverage running this is one dict lookup.
"""

from __future__ import annotations

import sys

__all__ = ["flush_coverage"]


def flush_coverage() -> None:
    coverage = sys.modules.get("coverage")
    if coverage is None:
        return
    current = coverage.Coverage.current()
    if current is not None:
        current.save()
