"""kubetune: hyperparameter and neural-architecture search, on a laptop or on Kubeflow."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["TrialContext", "TuneResult", "__version__", "load_model", "load_spec", "tune"]

if TYPE_CHECKING:
    from kubetune.api import TrialContext, TuneResult, tune
    from kubetune.core.spec import load_spec
    from kubetune.inference import load_model


def __getattr__(name: str) -> Any:
    # Lazy, so `import kubetune` in a worker or the CLI stays cheap.
    if name in ("tune", "TuneResult", "TrialContext"):
        from kubetune import api

        return getattr(api, name)
    if name == "load_spec":
        from kubetune.core.spec import load_spec

        return load_spec
    if name == "load_model":
        from kubetune.inference import load_model

        return load_model
    raise AttributeError(name)
