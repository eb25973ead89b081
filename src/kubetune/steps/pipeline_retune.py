"""Recurring re-tuning in the Kubeflow pipelines (what :mod:`kubetune.steps.retune` does
for ``kubetune run``), split over tasks:

- the ``retune`` task, right after ``retrieve``, decides: ``skip`` when the data is the
  production model's (unless the ``force`` pipeline parameter is set), else ``go``; the
  rest of the graph runs under ``dsl.If(decision == 'go')``. It hands the search tasks
  the warm start (how many earlier configs, and the repository's as a fallback) as JSON;
- every later task finds the study of the run's data version from the pinned data's
  fingerprint (:func:`kubetune.steps.pipeline_io.run_context`);
- ``push`` records which KFP run and schedule and which data produced the version
  (:func:`kfp_provenance`).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

from kubetune.core.spec import ExperimentSpec
from kubetune.core.warm_start import Candidate
from kubetune.steps.pipeline_io import DataRef, load_data, run_context
from kubetune.steps.retune import Provenance

__all__ = ["GO", "SKIP", "RetuneDecision", "WarmStart", "decide", "kfp_provenance"]

GO, SKIP = "go", "skip"


@dataclass(frozen=True)
class WarmStart:
    """What the search task (controller) or the first ``suggest`` (looping) queues first."""

    count: int = 0
    fallback: list[Candidate] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(
            {"count": self.count, "fallback": [asdict(c) for c in self.fallback]},
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> WarmStart:
        """Empty text (a spec without ``retune:``, a test): no warm start."""
        if not text:
            return cls()
        raw = json.loads(text)
        return cls(int(raw["count"]), [Candidate(**c) for c in raw.get("fallback", [])])


@dataclass(frozen=True)
class RetuneDecision:
    decision: str  # GO or SKIP
    reason: str
    study: str
    warm_start: WarmStart

    def markdown(self, spec: ExperimentSpec, ref: DataRef) -> str:
        """The ``Markdown`` artifact the KFP UI shows on the task."""
        verb = "stopped early" if self.decision == SKIP else "goes on"
        lines = [
            f"# {spec.name}: re-tuning {verb}",
            "",
            self.reason,
            "",
            f"- data: `{ref.source}`, fingerprint `{ref.fingerprint[:12]}`",
            f"- study: `{self.study}`",
            f"- warm start: up to {self.warm_start.count} earlier configs"
            f" ({len(self.warm_start.fallback)} in the model repository)",
        ]
        return "\n".join(lines) + "\n"


def decide(
    spec: ExperimentSpec, ref: DataRef, model_repo: str = "", *, force: bool = False
) -> RetuneDecision:
    """Whether the run searches (see :func:`kubetune.steps.retune.plan_retune`). A skipped
    run writes its summary to the run folder, as ``kubetune run`` does."""
    from kubetune.repository import open_repository
    from kubetune.steps.retune import plan_retune
    from kubetune.steps.run import write_skipped_summary

    started = time.monotonic()
    context = run_context(spec, model_repo, ref.fingerprint)
    if spec.retune is None:
        return RetuneDecision(
            GO, "no retune: section: a plain run", context.study_name, WarmStart()
        )
    data = load_data(spec, ref)
    repo = open_repository(context.model_repo, base_dir=context.base_dir)
    plan = plan_retune(spec, data, repo, context, force=force)
    if plan.skip is not None:
        write_skipped_summary(spec, plan.skip, context, started)
        return RetuneDecision(SKIP, plan.skip, plan.context.study_name, WarmStart())
    why = "forced" if force else "new data"
    return RetuneDecision(
        GO,
        f"{why}: re-tuning in study {plan.context.study_name}",
        plan.context.study_name,
        WarmStart(plan.warm_start, plan.fallback),
    )


def kfp_provenance(run_id: str, run_name: str, schedule_time: str) -> Provenance:
    """From KFP's placeholders (``dsl.PIPELINE_JOB_ID_PLACEHOLDER``, ``..._NAME_...``,
    ``..._SCHEDULE_TIME_UTC_...``); one a runner left unresolved (kfp.local resolves no
    schedule time) counts as not given, and the environment fills in (``KFP_RUN_ID``)."""

    def given(value: str) -> str | None:
        return value if value and not value.startswith("{{$") else None

    return Provenance.resolve(
        run_id=given(run_id), run_name=given(run_name), schedule=given(schedule_time)
    )
