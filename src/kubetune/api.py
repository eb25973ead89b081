"""The Python API: tune an in-process objective with kubetune's strategies and executor.

>>> result = kubetune.tune(lambda p: (p["x"] - 2) ** 2,
...                        {"x": {"type": "float", "low": -5, "high": 5}},
...                        direction="minimize", max_trials=30)
>>> result.best_params
"""

from __future__ import annotations

import contextlib
import inspect
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.pruners import BasePruner
from optuna.samplers import BaseSampler
from optuna.trial import TrialState

from kubetune.core.attrs import MESSAGE
from kubetune.core.events import LoopObserver
from kubetune.core.search import TuneResult, run_search
from kubetune.core.spec import parse_spec
from kubetune.core.stop_reason import StopKind
from kubetune.core.trial import Reporter, TrialRequest
from kubetune.errors import AllTrialsFailedError, SpecError
from kubetune.executors import create_executor

__all__ = ["TrialContext", "TuneResult", "tune"]


@dataclass(frozen=True)
class TrialContext:
    """Handed to objectives that take a second argument."""

    number: int
    seed: int
    budget: int | None
    reporter: Reporter
    #: The trial whose model this one should start from, or None for a fresh start: a pbt
    #: member's previous interval or the better member it copies (``strategy="pbt"``), an
    #: evolution child's parent.
    parent: int | None = None
    checkpoints: str | None = None  # the search's checkpoint folder (tune's checkpoint_dir)

    def report(self, step: int, value: float) -> None:
        """Report an intermediate value; raises optuna.TrialPruned when pruned."""
        self.reporter.report(step, value)

    def checkpoint_dir(self, number: int | None = None) -> Path:
        """Trial ``number``'s checkpoint folder (this trial's by default), created if
        missing: save the model and optimizer state here, and read
        ``ctx.checkpoint_dir(ctx.parent)`` to start from the parent's."""
        if self.checkpoints is None:
            raise SpecError("this trial has no checkpoint folder (tune(checkpoint_dir=...))")
        folder = Path(self.checkpoints) / f"{self.number if number is None else number:06d}"
        folder.mkdir(parents=True, exist_ok=True)
        return folder


class _ObjectiveAdapter:
    """Turns ``objective(params)`` / ``objective(params, ctx)`` into a trial function."""

    def __init__(self, objective: Callable[..., Any]) -> None:
        self.objective = objective
        self.takes_context = _positional_arity(objective) >= 2

    def __call__(self, request: TrialRequest, reporter: Reporter) -> Any:
        if self.takes_context:
            ctx = TrialContext(
                request.number,
                request.seed,
                request.budget,
                reporter,
                parent=request.parent,
                checkpoints=request.output_dir,
            )
            return self.objective(request.params, ctx)
        return self.objective(request.params)


def _positional_arity(fn: Callable[..., Any]) -> int:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in sig.parameters.values()):
        return 2
    return sum(1 for p in sig.parameters.values() if p.kind in kinds)


def tune(
    objective: Callable[..., Any],
    space: Mapping[str, Any],
    *,
    strategy: str | BaseSampler = "auto",
    strategy_options: Mapping[str, Any] | None = None,
    scheduler: str | BasePruner | None = None,
    pruner: BasePruner | None = None,
    direction: Literal["minimize", "maximize"] = "minimize",
    metric: str = "value",
    max_trials: int | None = 100,
    timeout: str | float | None = None,
    target: float | None = None,
    patience: int | None = None,
    parallel: int = 1,
    retries: int = 2,
    trial_timeout: str | float | None = None,
    fidelity: Mapping[str, Any] | None = None,
    seed: int = 0,
    storage: str | None = None,
    name: str = "kubetune",
    observer: LoopObserver | None = None,
    checkpoint_dir: str | Path | None = None,
) -> TuneResult:
    """Search ``space`` for the best ``objective``; trials run in ``parallel`` worker processes.

    ``objective(params)`` or ``objective(params, ctx)`` returns a number, or a dict of metrics
    holding ``metric``. ``ctx.report(step, value)`` feeds the multi-fidelity scheduler.
    The study is kept in memory unless ``storage`` names a journal file or database URL,
    in which case running again resumes it.

    ``strategy`` is a name (``tpe``, ``gp``, ...) or an optuna sampler instance; ``scheduler``
    is a name (needs ``fidelity``; the same as ``fidelity["scheduler"]``) or an optuna pruner
    instance, which ``pruner=`` also accepts. Instances are used as given (their own seed).

    ``ctx.checkpoint_dir()`` is a folder per trial under ``checkpoint_dir`` (default: a
    temporary folder removed when ``tune`` returns; name one to keep them, e.g. with a
    persistent ``storage``); ``ctx.parent`` names the trial to start from, which
    ``strategy="pbt"`` and weight inheritance under ``"evolution"`` rely on.
    """
    sampler = strategy if isinstance(strategy, BaseSampler) else None
    given_pruner = _pruner_argument(scheduler, pruner)
    fidelity_section = dict(fidelity) if fidelity else None
    if isinstance(scheduler, str):
        if fidelity_section is None:
            raise SpecError("tune(): scheduler= by name needs fidelity=; pass a pruner instead")
        fidelity_section["scheduler"] = scheduler
    spec = parse_spec(
        {
            "name": name,
            "objective": {"metric": metric, "direction": direction, "target": target},
            "search_space": dict(space),
            "strategy": {
                "name": "auto" if sampler is not None else strategy,
                **dict(strategy_options or {}),
            },
            "fidelity": fidelity_section,
            "limits": {
                "max_trials": max_trials,
                "timeout": timeout,
                "patience": patience,
                "parallel": parallel,
                "retries": retries,
                "trial_timeout": trial_timeout,
            },
            "seed": seed,
            "storage": storage,
        },
        source="tune()",
    )
    with (
        _checkpoint_folder(checkpoint_dir) as checkpoints,
        create_executor(spec, trial_fn=_ObjectiveAdapter(objective)) as executor,
    ):
        result = run_search(
            spec,
            executor,
            observer=observer,
            in_memory=True,
            output_dir=checkpoints,
            sampler=sampler,
            pruner=given_pruner,
        )
    if result.stop_reason.kind is StopKind.INTERRUPTED:
        # The study is saved (and resumable with storage=); the script must not go on as if
        # the search had finished.
        raise KeyboardInterrupt
    if result.best_trial is None:
        _raise_if_all_failed(result.study)
    return result


@contextlib.contextmanager
def _checkpoint_folder(given: str | Path | None) -> Iterator[str]:
    if given is not None:
        Path(given).mkdir(parents=True, exist_ok=True)
        yield str(given)
        return
    with tempfile.TemporaryDirectory(prefix="kubetune-checkpoints-") as tmp:
        yield tmp


def _raise_if_all_failed(study: optuna.Study) -> None:
    trials = study.get_trials(deepcopy=False)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    if not failed or any(t.state == TrialState.PRUNED for t in trials):
        return
    first = min(failed, key=lambda t: t.number)
    reason = str(first.user_attrs.get(MESSAGE, "no reason recorded")).strip()
    raise AllTrialsFailedError(
        f"all {len(failed)} trials failed; the first (trial {first.number}): {reason}"
    )


def _pruner_argument(
    scheduler: str | BasePruner | None, pruner: BasePruner | None
) -> BasePruner | None:
    """The pruner instance given as ``scheduler=`` or ``pruner=``, if any."""
    if scheduler is not None and pruner is not None:
        raise SpecError("tune(): give scheduler= or pruner=, not both")
    if pruner is not None and not isinstance(pruner, BasePruner):
        raise SpecError(f"tune(): pruner= must be an optuna pruner (got {type(pruner).__name__})")
    if scheduler is not None and not isinstance(scheduler, str | BasePruner):
        raise SpecError(
            "tune(): scheduler= must be a scheduler name or an optuna pruner"
            f" (got {type(scheduler).__name__})"
        )
    return scheduler if isinstance(scheduler, BasePruner) else pruner
