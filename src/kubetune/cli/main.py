"""The ``kubetune`` command.

    kubetune run SPEC [--model-repo URI]     the whole job on this machine
    kubetune validate SPEC                   check a spec, show the resolved search
    kubetune trial --request R --output O   one trial (what a subprocess or pod runs)
    kubetune models list|show|pull|promote|diff   browse and manage the model repository
    kubetune predict NAME[:REF] DATA --output FILE   predictions of a stored model
    kubetune pipeline compile SPEC -o FILE   a Kubeflow pipeline (looping or controller form)
    kubetune run --kfp-local SPEC            that pipeline, run here through kfp.local
    kubetune pipeline upload|submit|schedule|runs|status   a compiled pipeline on KFP

A user mistake prints one ``error:`` line (or a few, for a spec) and exits with 2; a
traceback means a bug. ``--output json`` prints one JSON document on stdout (progress stays
on stderr). Settings come from a flag, else ``KUBETUNE_STORAGE`` / ``KUBETUNE_MODEL_REPO``,
else the spec, else the default.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubetune import __version__
from kubetune.cli.settings import (
    ENV_ARTIFACTS,
    ENV_MODEL_REPO,
    ENV_STORAGE,
    duration,
    first_set,
    load_run_spec,
    non_negative_int,
)
from kubetune.errors import KubetuneError

if TYPE_CHECKING:
    from kubetune.repository import ModelRepository


EXIT_USER_ERROR = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubetune", description="Hyperparameter and architecture search."
    )
    parser.add_argument("--version", action="version", version=f"kubetune {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="search, train the best model, evaluate it and push it")
    run.add_argument("spec", help="experiment spec (YAML)")
    run.add_argument(
        "--model-repo",
        help=f"model repository: a directory, file:// or s3:// URI (default: ${ENV_MODEL_REPO},"
        " else the spec's model_repo, else ./model-repo)",
    )
    run.add_argument(
        "--artifacts",
        help=f"trial artifact store (checkpoints): a directory, file:// or s3:// URI (default:"
        f" ${ENV_ARTIFACTS}, else the spec's artifacts, else <run folder>/artifacts)",
    )
    run.add_argument("--max-trials", type=int, help="override limits.max_trials")
    run.add_argument("--parallel", type=int, help="override limits.parallel")
    run.add_argument("--timeout", type=duration, help="override limits.timeout (90s, 10m, 1h)")
    run.add_argument("--seed", type=non_negative_int, help="override seed")
    run.add_argument(
        "--executor",
        metavar="KIND",
        help="override executor.kind (local, subprocess, kubernetes); the spec's executor"
        " options are kept when it names the same kind",
    )
    run.add_argument(
        "--storage",
        help=f"study storage: a journal file or database URL (default: ${ENV_STORAGE},"
        " else the spec's storage, else a journal in the run folder)",
    )
    _output_option(run, "the run summary")
    run.add_argument(
        "--accept-changed-study",
        action="store_true",
        help="resume a study although its metric, space, data, trainer or fidelity changed",
    )
    run.add_argument(
        "--force",
        action="store_true",
        help="re-tune even when the data is the production model's (spec with retune:)",
    )
    run.add_argument(
        "--run-id",
        help="recorded in the pushed manifest (default: $KUBETUNE_RUN_ID, else $KFP_RUN_ID)",
    )
    run.add_argument(
        "--schedule",
        help="name of the schedule that started this run, recorded in the pushed manifest"
        " (default: $KUBETUNE_SCHEDULE)",
    )
    run.add_argument(
        "--kfp-local",
        action="store_true",
        help="run the compiled Kubeflow pipeline on this machine through kfp.local",
    )
    run.add_argument(
        "--form",
        choices=("looping", "controller"),
        default="looping",
        help="with --kfp-local: the pipeline form (default: looping)",
    )

    val = sub.add_parser("validate", help="check a spec and print the resolved search space")
    val.add_argument("spec", help="experiment spec (YAML); its data is loaded and checked too")
    _output_option(val, "the resolved search")

    trial = sub.add_parser("trial", help="run one trial from a serialized request")
    trial.add_argument("--spec", help="spec file (default: the spec inside the request)")
    trial.add_argument("--request", required=True, help="trial request JSON")
    trial.add_argument("--output", required=True, help="where to write the result JSON")
    trial.add_argument("--progress", help="append intermediate values here (JSON lines)")
    trial.add_argument("--function", help="module:function to run instead of the trainer")
    trial.add_argument("--started-marker", help="file written when the trial's code starts")

    from kubetune.cli.worker_cmd import add_worker_parser

    add_worker_parser(sub)

    models = sub.add_parser("models", help="browse the model repository")
    repo_help = f"directory, file:// or s3:// URI (default: ${ENV_MODEL_REPO}, else ./model-repo)"
    models.add_argument("--model-repo", help=repo_help)
    msub = models.add_subparsers(dest="models_command", required=True)
    mlist = msub.add_parser("list", help="models, or the versions of one model")
    mlist.add_argument("name", nargs="?", help="a model: list its versions (default: all models)")
    _output_option(mlist, "the listing")
    mshow = msub.add_parser("show", help="a version's manifest")
    mshow.add_argument("name", help="model name")
    ref_help = "version, alias or 'latest' (default: production if it exists, else latest)"
    mshow.add_argument("ref", nargs="?", help=ref_help)
    _output_option(mshow, "the manifest")
    mpull = msub.add_parser("pull", help="download and verify a version")
    mpull.add_argument("name", help="model name")
    mpull.add_argument("ref", nargs="?", help=ref_help)
    mpull.add_argument(
        "--dest", required=True, help="empty or new directory to put the verified files in"
    )
    mpromote = msub.add_parser(
        "promote", help="point an alias at a version (compare-and-swap; prints old -> new)"
    )
    mpromote.add_argument("name", help="model name")
    mpromote.add_argument("version", help="the version to point at (a number, alias or latest)")
    mpromote.add_argument("--alias", required=True, help="the alias to move, e.g. production")
    mpromote.add_argument(
        "--expect",
        help="move only while the alias still points at this version ('none': it must not"
        " exist yet); otherwise fail and say where it points now",
    )
    _output_option(mpromote, "the move")
    mdiff = msub.add_parser("diff", help="what differs between two versions")
    mdiff.add_argument("name", help="model name")
    mdiff.add_argument("a", help="the base: a version, alias or 'latest'")
    mdiff.add_argument("b", help="compared with: a version, alias or 'latest'")
    _output_option(mdiff, "the differences")
    for command in (mlist, mshow, mpull, mpromote, mdiff):
        # Also accepted after the subcommand; SUPPRESS keeps a value given before it.
        command.add_argument("--model-repo", default=argparse.SUPPRESS, help=repo_help)

    pred = sub.add_parser("predict", help="predict raw rows with a stored model version")
    pred.add_argument(
        "model", help="NAME[:REF] (REF: version, alias, latest) or a pulled directory"
    )
    pred.add_argument("data", help="rows to predict (.csv or .parquet; extra columns ignored)")
    pred.add_argument("--output", required=True, help="where to write predictions (.csv/.parquet)")
    pred.add_argument("--model-repo", help=repo_help)
    _pipeline_group(sub)

    proxy = sub.add_parser(
        "study-proxy", help="serve a study database to many pods (optuna's gRPC storage proxy)"
    )
    proxy.add_argument(
        "--storage",
        help=f"the database URL to serve (default: ${ENV_STORAGE}; keeps the"
        " password out of the pod's arguments)",
    )
    proxy.add_argument("--host", default="0.0.0.0", help="address to listen on (default: all)")  # noqa: S104
    proxy.add_argument("--port", type=int, default=13000, help="port (default: 13000)")
    return parser


def _pipeline_group(sub: Any) -> None:
    """``kubetune pipeline ...``: each subcommand sets ``handler`` (args -> exit code)."""
    from kubetune.cli.pipeline_compile import add_compile_command
    from kubetune.cli.pipeline_remote import add_remote_commands

    pipeline = sub.add_parser(
        "pipeline", help="Kubeflow Pipelines: compile a spec, upload, run and schedule pipelines"
    )
    group = pipeline.add_subparsers(dest="pipeline_command", required=True)
    add_compile_command(group)
    add_remote_commands(group)


def _output_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--output",
        choices=("text", "json"),
        default="text",
        help=f"print {what} as text (default) or as one JSON document on stdout",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _quiet_optuna()
    try:
        code = _dispatch(args)
        sys.stdout.flush()  # a closed pipe shows here, not as a traceback at exit
        return code
    except BrokenPipeError:
        # `kubetune validate spec.yaml | head -1`: the reader is gone; stop quietly, like
        # other commands killed by SIGPIPE, and send what is still buffered nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except KubetuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # Whatever was being written (study journal, SQLite, run folder, model files):
        # completed trials are safe, and the next run repairs a half-written journal record.
        where = f" writing {exc.filename}" if exc.filename else ""
        print(
            f"error: no space left on the device{where}; free some space and run the same"
            " command again to resume",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR


def _quiet_optuna() -> None:
    # kubetune prints its own progress; optuna's per-trial INFO lines would repeat it.
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        return _run(args)
    if args.command == "validate":
        return _validate(args.spec, json_output=args.output == "json")
    if args.command == "trial":
        from kubetune.cli.trial_cmd import run_trial_command

        return run_trial_command(
            args.spec,
            args.request,
            args.output,
            args.progress,
            function=args.function,
            started_marker=args.started_marker,
        )
    if args.command == "models":
        return _models(args)
    if args.command in ("pipeline", "worker"):
        return int(args.handler(args))
    if args.command == "predict":
        from kubetune.cli.predict_cmd import run_predict
        from kubetune.core.spec import DEFAULT_MODEL_REPO

        repo = first_set(args.model_repo, ENV_MODEL_REPO, os.environ) or DEFAULT_MODEL_REPO
        return run_predict(args.model, args.data, args.output, repo)
    if args.command == "study-proxy":
        from kubetune.cli.study_proxy_cmd import run_study_proxy

        return run_study_proxy(args.storage, args.host, args.port)
    raise AssertionError(args.command)


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from kubetune.core.stop_reason import StopKind
    from kubetune.report import render_summary
    from kubetune.steps.retune import Provenance
    from kubetune.steps.run import run_experiment

    limits = {"max_trials": args.max_trials, "parallel": args.parallel, "timeout": args.timeout}
    model_repo = first_set(args.model_repo, ENV_MODEL_REPO, os.environ)
    if args.kfp_local:
        from kubetune.kfp.local_run import run_pipeline_locally
        from kubetune.steps.search import normalize_objective

        # The storage stays out of the compiled spec (a database URL may hold a password):
        # the tasks read it from the environment, as they read a Secret in a cluster.
        spec = load_run_spec(
            args.spec, environ={}, limits=limits, seed=args.seed, executor=args.executor
        )
        summary = run_pipeline_locally(
            normalize_objective(spec),
            form=args.form,
            model_repo=model_repo,
            storage=first_set(args.storage, ENV_STORAGE, os.environ),
            force=args.force,
        ).summary
    else:
        spec = load_run_spec(
            args.spec,
            environ=os.environ,
            limits=limits,
            storage=args.storage,
            seed=args.seed,
            executor=args.executor,
        )
        summary = run_experiment(
            spec,
            model_repo=model_repo,
            artifacts=first_set(args.artifacts, ENV_ARTIFACTS, os.environ),
            console=Console(stderr=True),
            accept_changed_study=args.accept_changed_study,
            force=args.force,
            provenance=Provenance.resolve(run_id=args.run_id, schedule=args.schedule),
        )
    if args.output == "json":
        from kubetune.cli.json_views import print_json

        print_json(summary.to_dict())
    elif summary.skipped:
        print(summary.skipped)  # a re-tuning run with nothing to do: no table of nothing
    else:
        render_summary(summary, Console())
    if summary.skipped:
        return 0
    if summary.stop_kind == StopKind.INTERRUPTED.value:
        return 130
    return 0 if summary.best_trial_number is not None else 1


def _validate(path: str, *, json_output: bool = False) -> int:
    from kubetune.core.plan import plan_search
    from kubetune.core.spec import load_spec

    spec = load_spec(path)
    if spec.trainer is not None:
        # What `run` would refuse, refused here too (without loading the data).
        from kubetune.errors import SpecError
        from kubetune.steps.search import normalize_objective
        from kubetune.trainers import TRAINER_KINDS

        kind = spec.trainer.kind
        if kind not in TRAINER_KINDS:
            raise SpecError(
                f"trainer.kind: unknown trainer kind '{kind}';"
                f" valid kinds: {', '.join(TRAINER_KINDS)}"
            )
        spec = normalize_objective(spec)
        if spec.data is not None:
            # Load the data too: a missing file, a trainer that cannot take this data or a
            # param the trainer does not accept would otherwise fail every trial of `run`.
            from kubetune.steps.retrieve import retrieve
            from kubetune.steps.trial import check_trainer

            check_trainer(spec, retrieve(spec))
    plan = plan_search(spec)
    from kubetune.executors import check_executor_kind

    check_executor_kind(spec.executor.kind)
    if json_output:
        from kubetune.cli.json_views import print_json, validate_view

        print_json(validate_view(path, spec, plan))
        return 0
    print(f"{path}: valid spec for experiment '{spec.name}'")
    print(
        f"objective: {spec.direction} {spec.objective.metric}"
        + (f" (target {spec.objective.target:g})" if spec.objective.target is not None else "")
    )
    print("search space:")
    width = max(len(n) for n, _ in spec.space.describe())
    for name, text in spec.space.describe():
        print(f"  {name.ljust(width)}  {text}")
    size = spec.space.cardinality(cap=100_000)
    if size is None:
        print("configs: infinite (a float without step)")
    else:
        print(f"configs: {size}" if size <= 100_000 else "configs: more than 100000")
    print(f"strategy: {plan.strategy} ({plan.strategy_reason})")
    if spec.fidelity:
        f = spec.fidelity
        print(
            f"fidelity: {f.param} from {f.min} to {f.max}, reduction factor"
            f" {f.reduction_factor}, scheduler {plan.scheduler}"
        )
    print("stops on: " + "; ".join(c.describe() for c in plan.stop_conditions))
    options = "".join(f", {k}: {v}" for k, v in sorted(spec.executor.options.items()))
    print(f"executor: {spec.executor.kind}{options}")
    return 0


def _models(args: argparse.Namespace) -> int:
    from kubetune.core.spec import DEFAULT_MODEL_REPO
    from kubetune.repository import open_repository
    from kubetune.repository.cli_views import render_model_show, render_models_list

    uri = first_set(args.model_repo, ENV_MODEL_REPO, os.environ) or DEFAULT_MODEL_REPO
    repo = open_repository(uri, base_dir=Path.cwd())
    json_output = getattr(args, "output", "text") == "json"
    if args.models_command == "promote":
        return _promote(repo, args, json_output=json_output)
    if args.models_command == "diff":
        return _diff(repo, args, json_output=json_output)
    if args.models_command in ("show", "pull"):
        args.ref = _default_ref(repo, args.name, args.ref)
    if json_output:
        from kubetune.cli import json_views

        if args.models_command == "list":
            json_views.print_json(json_views.models_list(repo, args.name))
            return 0
        if args.models_command == "show":
            json_views.print_json(json_views.model_show(repo, args.name, _ref(args.ref)))
            return 0
    if args.models_command == "list":
        print(render_models_list(repo, args.name))
    elif args.models_command == "show":
        print(render_model_show(repo, args.name, _ref(args.ref)))
    else:
        manifest = repo.pull(args.name, _ref(args.ref), Path(args.dest))
        print(
            f"pulled {args.name} v{manifest.version} into {args.dest}"
            f" ({len(manifest.files)} files, hashes verified)"
        )
    return 0


def _promote(repo: ModelRepository, args: argparse.Namespace, *, json_output: bool) -> int:
    from kubetune.errors import RepositoryError
    from kubetune.repository.cli_views import render_promotion

    version = repo.resolve(args.name, _ref(args.version))
    kwargs = {}
    if args.expect is not None:
        expect = args.expect.strip().lower()
        if expect != "none" and not expect.isdigit():
            raise RepositoryError(f"--expect: a version number or 'none', got {args.expect!r}")
        kwargs["expect"] = None if expect == "none" else int(expect)
    previous = repo.set_alias(args.name, args.alias, version, **kwargs)
    if json_output:
        from kubetune.cli.json_views import print_json

        print_json(
            {
                "repository": repo.uri,
                "model": args.name,
                "alias": args.alias,
                "previous": previous,
                "version": version,
            }
        )
    else:
        print(render_promotion(args.name, args.alias, previous, version))
    return 0


def _diff(repo: ModelRepository, args: argparse.Namespace, *, json_output: bool) -> int:
    from kubetune.repository.cli_views import render_model_diff
    from kubetune.repository.diff import diff_versions

    diff = diff_versions(repo, args.name, _ref(args.a), _ref(args.b))
    if json_output:
        from kubetune.cli.json_views import print_json

        print_json({"repository": repo.uri, **diff.to_dict()})
    else:
        print(render_model_diff(diff))
    return 0


def _default_ref(repo: ModelRepository, name: str, ref: str | None) -> str:
    """No ref means what a deploy script wants: the production model, not the newest one
    (which the champion gate may have rejected). Says on stderr which version that is."""
    if ref is not None:
        return ref
    from kubetune.repository import PRODUCTION

    chosen = PRODUCTION if PRODUCTION in repo.aliases(name) else "latest"
    version = repo.resolve(name, chosen)
    print(f"{name}: no version given, using {chosen} (v{version})", file=sys.stderr)
    return str(version)


def _ref(ref: str) -> int | str:
    return int(ref) if ref.isdigit() else ref


if __name__ == "__main__":
    sys.exit(main())
