"""``kubetune pipeline compile``: a spec -> a Kubeflow Pipelines YAML file.

    kubetune pipeline compile SPEC [--form looping|controller] -o FILE [--image IMAGE]
        [--gpus N] [--gpu-resource nvidia.com/gpu] [--node-selector k=v]...
        [--toleration key[=value][:effect]]... [--s3-secret NAME] [--db-secret NAME]
        [--trial-retries N] [--max-rounds N]

Registered under the ``pipeline`` command group by :func:`add_compile_command`; other
``pipeline`` subcommands (upload, submit, schedule...) register beside it.
"""

from __future__ import annotations

import argparse
from typing import Any

from kubetune.cli.settings import non_negative_int
from kubetune.errors import SpecError

__all__ = ["add_compile_command", "add_pipeline_options", "pipeline_options"]


def add_compile_command(pipeline_commands: Any) -> None:
    """Add ``compile`` to the ``pipeline`` group's subparsers."""
    compile_cmd = pipeline_commands.add_parser(
        "compile", help="compile a spec into a Kubeflow Pipelines YAML file"
    )
    compile_cmd.add_argument("spec", help="experiment spec (YAML)")
    compile_cmd.add_argument("-o", "--output", required=True, help="pipeline YAML to write")
    add_pipeline_options(compile_cmd)
    compile_cmd.set_defaults(handler=_compile)


def add_pipeline_options(parser: argparse.ArgumentParser) -> None:
    """The compile-time options (also taken by ``kubetune run --kfp-local``)."""
    from kubetune.kfp import DEFAULT_IMAGE

    parser.add_argument(
        "--form",
        choices=("looping", "controller"),
        default="looping",
        help="looping: each round's trials are pipeline tasks (GPU pods); controller: the"
        " search loop runs inside one task (default: looping)",
    )
    parser.add_argument(
        "--image", default=DEFAULT_IMAGE, help=f"default of the image parameter ({DEFAULT_IMAGE})"
    )
    parser.add_argument(
        "--gpus",
        type=non_negative_int,
        default=1,
        help="GPUs each trial and the final training request (default 1; 0: none)",
    )
    parser.add_argument(
        "--gpu-resource", default="nvidia.com/gpu", help="accelerator resource name"
    )
    parser.add_argument(
        "--node-selector",
        action="append",
        default=[],
        metavar="LABEL=VALUE",
        help="node label GPU tasks must run on (repeatable)",
    )
    parser.add_argument(
        "--toleration",
        action="append",
        default=None,
        metavar="KEY[=VALUE][:EFFECT]",
        help="taint GPU tasks tolerate (repeatable; default nvidia.com/gpu:NoSchedule)",
    )
    parser.add_argument(
        "--s3-secret",
        default="kubetune-s3",
        help="Secret with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, KUBETUNE_S3_ENDPOINT"
        " ('' for none; default kubetune-s3)",
    )
    parser.add_argument(
        "--db-secret",
        default="kubetune-postgresql",
        help="Secret with KUBETUNE_STORAGE, the study database URL ('' for none;"
        " default kubetune-postgresql, as manifests/ creates it)",
    )
    parser.add_argument(
        "--trial-retries",
        type=non_negative_int,
        default=2,
        help="KFP retries of a trial task whose pod died (default 2)",
    )
    parser.add_argument(
        "--max-rounds",
        type=non_negative_int,
        help="looping form: rounds to unroll (default: what limits.max_trials needs)",
    )


def pipeline_options(args: argparse.Namespace) -> Any:
    from kubetune.kfp.pipelines import PipelineOptions, Toleration

    selector: dict[str, str] = {}
    for item in args.node_selector:
        label, eq, value = item.partition("=")
        if not label or not eq:
            raise SpecError(f"--node-selector: expected LABEL=VALUE, got {item!r}")
        selector[label] = value
    tolerations = (
        PipelineOptions().tolerations
        if args.toleration is None
        else tuple(Toleration.parse(t) for t in args.toleration)
    )
    return PipelineOptions(
        image=args.image,
        gpu_resource=args.gpu_resource,
        gpus=args.gpus,
        node_selector=selector,
        tolerations=tolerations,
        s3_secret=args.s3_secret or None,
        db_secret=args.db_secret or None,
        trial_retries=args.trial_retries,
        max_rounds=args.max_rounds or None,
    )


def _compile(args: argparse.Namespace) -> int:
    from kubetune.core.spec import load_spec
    from kubetune.kfp.pipelines import compile_pipeline
    from kubetune.steps.search import normalize_objective

    spec = normalize_objective(load_spec(args.spec))
    out = compile_pipeline(spec, args.form, args.output, pipeline_options(args))
    print(f"compiled the {args.form} pipeline of '{spec.name}' into {out}")
    return 0
