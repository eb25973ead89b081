"""``kubetune run --kfp-local``: the compiled pipeline, run on this machine by ``kfp.local``.

The same YAML a cluster runs, executed by kfp's ``SubprocessRunner`` (``use_venv=False``:
every task runs this Python, where kubetune is installed, instead of the image). What the
local runner does not do, it says with a warning and skips: GPU requests, node selectors,
tolerations and Secrets (the study storage and S3 settings come from this process's
environment instead). Each task starts a fresh interpreter, about a second or more here.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from kubetune.core.run_context import RunContext
from kubetune.core.spec import ExperimentSpec
from kubetune.errors import KubetuneError
from kubetune.kfp.pipelines import Form, PipelineOptions, compile_pipeline
from kubetune.report.summary import RunSummary
from kubetune.steps.pipeline_io import ENV_ARTIFACTS, ENV_STORAGE

__all__ = ["LocalPipelineRun", "run_pipeline_locally"]


@dataclass(frozen=True)
class LocalPipelineRun:
    summary: RunSummary
    pipeline_yaml: Path
    pipeline_root: Path


def run_pipeline_locally(
    spec: ExperimentSpec,
    *,
    form: Form = "looping",
    model_repo: str | None = None,
    storage: str | None = None,
    pipeline_yaml: str | Path | None = None,
    options: PipelineOptions | None = None,
    force: bool = False,
) -> LocalPipelineRun:
    """Compile ``spec`` (or run ``pipeline_yaml`` as given) and run it through kfp.local.

    Task outputs go to ``<run folder>/kfp-local/``; the summary is the one the push task
    (or, for a re-tuning run that stopped early, the ``retune`` task) writes to the run
    folder, as ``kubetune run`` writes it. ``force``: the pipeline parameter.
    """
    from kfp import components, local

    context = RunContext.from_spec(spec, model_repo=model_repo, storage=storage)
    root = context.run_dir / "kfp-local"
    root.mkdir(parents=True, exist_ok=True)
    if pipeline_yaml is None:
        pipeline_yaml = compile_pipeline(spec, form, root / f"{form}.yaml", options)
    pipeline_yaml = Path(pipeline_yaml)
    if context.summary_path.exists():
        context.summary_path.unlink()  # so an old summary is never taken for this run's
    saved = {name: os.environ.get(name) for name in (ENV_STORAGE, ENV_ARTIFACTS)}
    real_print = builtins.print
    if context.study_storage is not None:
        os.environ[ENV_STORAGE] = context.study_storage  # the tasks read it, as from a Secret
    # Tasks run in other folders: one absolute artifact store, where promoted configs'
    # checkpoints are found (an explicit KUBETUNE_ARTIFACTS or the spec's wins).
    os.environ[ENV_ARTIFACTS] = saved[ENV_ARTIFACTS] or context.artifacts
    try:
        local.init(
            runner=local.SubprocessRunner(use_venv=False),
            pipeline_root=str(root),
            raise_on_error=False,
        )
        pipeline = components.load_component_from_file(str(_runnable_here(pipeline_yaml)))
        # kfp.local logs every task to stdout; kubetune keeps stdout for results
        # (`--output json`) and progress on stderr.
        with contextlib.redirect_stdout(sys.stderr):
            pipeline(model_repo=str(context.model_repo), force=force)
    finally:
        # kfp.local indents task output by swapping builtins.print per task; tasks of a
        # ParallelFor run in threads and can restore each other's swap, leaving every later
        # print in this process indented (and its indent on stdout). Put the real one back.
        builtins.print = real_print
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    if not context.summary_path.exists():
        raise KubetuneError(
            f"the pipeline failed before pushing a model; the failing task's log is above"
            f" and its outputs are in {root}"
        )
    summary = RunSummary.from_dict(json.loads(context.summary_path.read_text()))
    return LocalPipelineRun(summary, pipeline_yaml, root)


def _runnable_here(pipeline_yaml: Path) -> Path:
    """kfp 2.17's local runner resolves the run's id and name but fails on the schedule
    time placeholder (push's provenance): a run started here has no schedule, so a copy
    with an empty value runs instead."""
    from kfp import dsl

    text = pipeline_yaml.read_text()
    if dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER not in text:
        return pipeline_yaml
    local = pipeline_yaml.with_name(f"{pipeline_yaml.stem}.kfp-local.yaml")
    local.write_text(text.replace(dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER, ""))
    return local
