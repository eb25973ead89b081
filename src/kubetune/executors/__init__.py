"""Executors by kind: where trials run. Modules are imported only when their kind is used,
so a local run never imports the Kubernetes client.

    local        reused worker processes on this machine (the embedded default)
    subprocess   one ``kubetune trial`` process per trial: the pod contract, run locally
    kubernetes   one ``batch/v1`` Job per trial attempt in a cluster
"""

from __future__ import annotations

import importlib
from pathlib import Path

from kubetune.core.executor import Executor, ExecutorContext
from kubetune.core.run_trial import TrialFunction
from kubetune.core.spec import ExperimentSpec
from kubetune.errors import SpecError

__all__ = [
    "EXECUTOR_KINDS",
    "ExecutorContext",
    "check_executor_kind",
    "create_executor",
    "executor_class",
]

# kind -> "module:class"; a new executor is one line here plus its module.
_EXECUTORS: dict[str, str] = {
    "local": "kubetune.executors.local:LocalExecutor",
    "subprocess": "kubetune.executors.subprocess:SubprocessExecutor",
    "kubernetes": "kubetune.executors.kubernetes.executor:KubernetesExecutor",
}
EXECUTOR_KINDS: tuple[str, ...] = tuple(_EXECUTORS)
# kind -> the extra that installs what it imports
_EXTRAS = {"kubernetes": "k8s"}


def check_executor_kind(kind: str) -> str:
    """``kind`` if an executor is registered under it (nothing is imported), else SpecError."""
    if kind not in _EXECUTORS:
        raise SpecError(
            f"executor.kind: unknown executor '{kind}' (known: {', '.join(EXECUTOR_KINDS)})"
        )
    return kind


def executor_class(kind: str) -> type[Executor]:
    module, name = _EXECUTORS[check_executor_kind(kind)].split(":")
    try:
        imported = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.startswith("kubetune"):
            raise
        extra = _EXTRAS.get(kind)
        hint = f"pip install 'kubetune[{extra}]'" if extra else f"pip install {exc.name}"
        raise SpecError(
            f"executor.kind: {kind} needs the '{exc.name}' package, which is not installed ({hint})"
        ) from None
    cls: type[Executor] = getattr(imported, name)
    return cls


def create_executor(
    spec: ExperimentSpec,
    *,
    trial_fn: TrialFunction | None = None,
    work_dir: Path | None = None,
) -> Executor:
    """The executor the spec's ``executor:`` section asks for."""
    kind = spec.executor.kind
    context = ExecutorContext(spec, trial_fn, work_dir)
    return executor_class(kind).from_context(spec.executor.options, context)
