"""The two pipeline forms of one spec, built with the kfp v2 SDK.

- **looping**: the loop in the graph. KFP v2 has no while loop, so rounds are unrolled at
  compile time (as many as ``limits.max_trials`` needs, see ``core.sync_schedule``); each
  round is ``suggest`` -> ``ParallelFor(parallelism=limits.parallel)`` of ``trial`` tasks
  (one GPU pod each, retried by KFP when the pod dies) -> ``record`` over ``Collected``
  -> ``If(go)`` the next round, ``Else`` the final steps. The final steps therefore appear
  once per round in the compiled YAML and run exactly once.
- **controller**: retrieve -> ``search`` (the asynchronous loop inside one task, trials on
  the spec's executor) -> train -> evaluate -> push.

Both take the same parameters: ``spec`` (inline YAML or a URI; default the compiled spec),
``model_repo``, ``data_uri``, ``max_trials``, ``timeout`` (empty or 0: the spec's),
``image`` and ``force``. Both check right after ``retrieve`` whether to re-tune (the
``retune`` task, :mod:`kubetune.steps.pipeline_retune`): on unchanged data with a
``retune:`` section the rest of the graph sits under a false ``If`` and nothing is pushed.
Credentials never are parameters: the S3 keys and the study database URL come
from Kubernetes Secrets as environment variables.
"""

# No `from __future__ import annotations`: kfp reads the pipeline signature's annotations.
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from kfp import compiler, dsl
from kfp import kubernetes as kfp_k8s

from kubetune.core.spec import ExperimentSpec
from kubetune.core.sync_schedule import max_rounds
from kubetune.errors import SpecError
from kubetune.kfp import DEFAULT_IMAGE
from kubetune.kfp import components as c
from kubetune.steps.pipeline_io import portable_spec

__all__ = ["FORMS", "PipelineOptions", "Toleration", "build_pipeline", "compile_pipeline"]

Form = Literal["looping", "controller"]
FORMS: tuple[Form, ...] = ("looping", "controller")

# Secret data keys are the environment variable names they become.
S3_SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "KUBETUNE_S3_ENDPOINT")
DB_SECRET_KEYS = ("KUBETUNE_STORAGE",)


@dataclass(frozen=True)
class Toleration:
    key: str
    operator: Literal["Equal", "Exists"] = "Exists"
    value: str | None = None
    effect: Literal["NoExecute", "NoSchedule", "PreferNoSchedule"] | None = "NoSchedule"

    @classmethod
    def parse(cls, text: str) -> "Toleration":
        """``key[=value][:effect]``, e.g. ``nvidia.com/gpu:NoSchedule``."""
        head, _, effect = text.partition(":")
        key, eq, value = head.partition("=")
        effects = ("NoExecute", "NoSchedule", "PreferNoSchedule")
        if not key or (effect and effect not in effects):
            raise SpecError(
                f"--toleration: expected key[=value][:effect] with effect one of"
                f" {', '.join(effects)}, got {text!r}"
            )
        return cls(
            key=key,
            operator="Equal" if eq else "Exists",
            value=value if eq else None,
            effect=effect or None,  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class PipelineOptions:
    """Compile-time settings (``kubetune pipeline compile`` flags)."""

    image: str = DEFAULT_IMAGE
    gpu_resource: str = "nvidia.com/gpu"
    gpus: int = 1  # per trial task and per final-training task; 0 asks for none
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = (Toleration("nvidia.com/gpu"),)
    s3_secret: str | None = "kubetune-s3"  # noqa: S105 - a Secret's name
    db_secret: str | None = "kubetune-postgresql"  # noqa: S105 - a Secret's name
    trial_retries: int = 2  # KFP retries of a trial task whose pod died
    max_rounds: int | None = None  # looping form; default: what limits.max_trials needs


def build_pipeline(
    spec: ExperimentSpec, form: Form, options: PipelineOptions | None = None
) -> Callable[..., Any]:
    """The ``@dsl.pipeline`` of ``spec`` in ``form``. The ``spec`` parameter defaults to
    ``spec`` as one line of JSON (valid YAML): kfp writes defaults into a comment header
    that a multi-line value would break."""
    options = options or PipelineOptions()
    spec_text = portable_spec(spec)
    if form not in FORMS:
        raise SpecError(f"--form: expected one of {', '.join(FORMS)}, got {form!r}")
    rounds = 0
    if form == "looping":
        rounds = options.max_rounds or max_rounds(spec)
        if rounds < 1:
            raise SpecError(f"--max-rounds: must be >= 1, got {rounds}")
    builder = _Builder(options, parallel=spec.limits.parallel)

    @dsl.pipeline(
        name=f"{spec.name}-{form}",
        description=f"kubetune: tune, train, evaluate and push '{spec.name}' ({form} form)",
    )
    def pipeline(
        spec: str = spec_text,
        model_repo: str = "",
        data_uri: str = "",
        max_trials: int = 0,
        timeout: str = "",
        image: str = options.image,
        force: bool = False,
    ) -> None:
        retrieved = builder.task(
            c.retrieve(spec=spec, data_uri=data_uri, max_trials=max_trials, timeout=timeout),
            image,
            study=False,
        )
        # Caching off: KFP keys its cache on inputs, and the data behind an unchanged URI may
        # have changed (a scheduled re-tuning run must see the new rows).
        retrieved.set_display_name("retrieve data").set_caching_options(False)
        run_spec, dataset = retrieved.outputs["run_spec"], retrieved.outputs["dataset"]
        # Re-tuning (a spec with retune:): on the production model's data the run stops
        # here, successfully, and says why; otherwise it goes on, warm-started.
        checked = builder.task(
            c.retune(spec=run_spec, model_repo=model_repo, force=force, dataset=dataset),
            image,
            study=False,
        ).set_caching_options(False)
        checked.set_display_name("re-tune or skip")
        warm_start = checked.outputs["warm_start"]
        with dsl.If(checked.outputs["decision"] == "go", name="data-changed"):
            if form == "controller":
                searched = builder.task(
                    c.search(
                        spec=run_spec, model_repo=model_repo, warm_start=warm_start, dataset=dataset
                    ),
                    image,
                ).set_caching_options(False)
                builder.final(run_spec, model_repo, searched.outputs["result"], dataset, image)
            else:
                # The trial tasks inside each ParallelFor take the pipeline's own parameters.
                raw = {
                    "spec": spec,
                    "data_uri": data_uri,
                    "max_trials": max_trials,
                    "timeout": timeout,
                }
                builder.rounds(
                    run_spec, raw, model_repo, dataset, image, warm_start, index=0, total=rounds
                )
        # Unchanged data: one small task says why and the run ends, successfully. (An If
        # without Else on a root-level task output also fails kfp 2.17's local runner.)
        with dsl.Else(name="data-unchanged"):
            done = builder.task(
                c.skipped(reason=checked.outputs["reason"]), image, study=False
            ).set_caching_options(False)
            done.set_display_name("skipped: data unchanged")

    return pipeline


class _Builder:
    """Adds tasks with the options' image, secrets and GPU settings."""

    def __init__(self, options: PipelineOptions, *, parallel: int) -> None:
        self.options = options
        self.parallel = parallel

    def task(self, task: Any, image: Any, *, study: bool = True, gpu: bool = False) -> Any:
        task.set_container_image(image)
        opts = self.options
        if opts.s3_secret:
            kfp_k8s.use_secret_as_env(
                task, opts.s3_secret, {k: k for k in S3_SECRET_KEYS}, optional=True
            )
        if study and opts.db_secret:
            kfp_k8s.use_secret_as_env(
                task, opts.db_secret, {k: k for k in DB_SECRET_KEYS}, optional=True
            )
        if gpu and opts.gpus > 0:
            task.set_accelerator_type(opts.gpu_resource).set_accelerator_limit(opts.gpus)
            for label, value in sorted(opts.node_selector.items()):
                kfp_k8s.add_node_selector(task, label, value)
            for tol in opts.tolerations:
                kfp_k8s.add_toleration(
                    task, key=tol.key, operator=tol.operator, value=tol.value, effect=tol.effect
                )
        return task

    def rounds(
        self,
        run_spec: Any,
        raw: dict[str, Any],
        model_repo: Any,
        dataset: Any,
        image: Any,
        warm_start: Any,
        *,
        index: int,
        total: int,
    ) -> None:
        """Round ``index`` and, under ``If(go)``, the rounds after it (a compile-time
        recursion: KFP v2 has no while loop). Only the first round gets the warm start."""
        run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
        suggested = self.task(
            c.suggest(
                spec=run_spec,
                run_id=run_id,
                round_index=index,
                warm_start=warm_start if index == 0 else "",
                dataset=dataset,
            ),
            image,
        ).set_caching_options(False)
        suggested.set_display_name(f"suggest round {index + 1}")
        with dsl.ParallelFor(suggested.output, parallelism=self.parallel) as request:
            ran = self.task(
                c.trial(**raw, request=request, dataset=dataset),
                image,
                study=False,
                gpu=True,
            ).set_caching_options(False)
            ran.set_retry(self.options.trial_retries)
            ran.set_display_name(f"trial round {index + 1}")
        recorded = self.task(
            c.record(
                spec=run_spec,
                run_id=run_id,
                round_index=index,
                last_round=index + 1 >= total,
                results=dsl.Collected(ran.output),
                dataset=dataset,
            ),
            image,
        ).set_caching_options(False)
        # A retried record applies its tells once (it stores its decision in the study).
        recorded.set_retry(self.options.trial_retries)
        recorded.set_display_name(f"record round {index + 1}")
        result = recorded.outputs["result"]
        if index + 1 >= total:
            self.final(run_spec, model_repo, result, dataset, image)
            return
        with dsl.If(recorded.outputs["decision"] == "go", name=f"round-{index + 2}"):
            self.rounds(
                run_spec, raw, model_repo, dataset, image, warm_start, index=index + 1, total=total
            )
        with dsl.Else(name=f"stop-after-round-{index + 1}"):
            self.final(run_spec, model_repo, result, dataset, image)

    def final(self, run_spec: Any, model_repo: Any, result: Any, dataset: Any, image: Any) -> None:
        trained = self.task(
            c.train(spec=run_spec, result=result, dataset=dataset), image, study=False, gpu=True
        ).set_caching_options(False)
        trained.set_display_name("train best config")
        evaluated = self.task(
            c.evaluate(spec=run_spec, dataset=dataset, model=trained.outputs["model"]),
            image,
            study=False,
        ).set_caching_options(False)
        pushed = self.task(
            c.push(
                spec=run_spec,
                model_repo=model_repo,
                result=result,
                test_metrics=evaluated.outputs["test_metrics"],
                # Provenance: which run (and, for a recurring run, which schedule) pushed it.
                run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
                schedule_time=dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER,
                dataset=dataset,
                model=trained.outputs["model"],
            ),
            image,
        ).set_caching_options(False)
        pushed.set_display_name("push to model repository")


def compile_pipeline(
    spec: ExperimentSpec,
    form: Form,
    output: str | Path,
    options: PipelineOptions | None = None,
) -> Path:
    """Compile the pipeline of ``spec`` in ``form`` to a KFP YAML file."""
    pipeline = build_pipeline(spec, form, options)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline, str(output))
    return output


def gpu_tasks(pipeline_yaml: str | Path) -> dict[str, str]:
    """Executor name -> accelerator resource it requests, read from a compiled pipeline."""
    docs = list(yaml.safe_load_all(Path(pipeline_yaml).read_text()))
    executors = docs[0]["deploymentSpec"]["executors"]
    found: dict[str, str] = {}
    for name, executor in executors.items():
        resources = executor.get("container", {}).get("resources", {})
        accelerator = resources.get("accelerator", {})
        kind = accelerator.get("resourceType") or accelerator.get("type")
        if kind:
            found[name] = kind
    return found
