"""The ``kubetune`` command.

    kubetune run SPEC [--model-repo URI]     the whole job on this machine
    kubetune validate SPEC                   check a spec, show the resolved search
    kubetune trial --spec S --request R --output O   one trial (what a pod runs)
    kubetune models list|show|pull           browse the model repository

A user mistake prints one ``error:`` line (or a few, for a spec) and exits with 2; a
traceback means a bug.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from kubetune import __version__
from kubetune.errors import KubetuneError

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
        help="model repository: a directory or file:// URI"
        " (default: the spec's model_repo, else ./model-repo)",
    )
    run.add_argument("--max-trials", type=int, help="override limits.max_trials")
    run.add_argument("--parallel", type=int, help="override limits.parallel")

    val = sub.add_parser("validate", help="check a spec and print the resolved search space")
    val.add_argument("spec")

    trial = sub.add_parser("trial", help="run one trial from a serialized request")
    trial.add_argument("--spec", required=True)
    trial.add_argument("--request", required=True, help="trial request JSON")
    trial.add_argument("--output", required=True, help="where to write the result JSON")
    trial.add_argument("--progress", help="append intermediate values here (JSON lines)")

    models = sub.add_parser("models", help="browse the model repository")
    models.add_argument("--model-repo", default="model-repo", help="directory or file:// URI")
    msub = models.add_subparsers(dest="models_command", required=True)
    mlist = msub.add_parser("list", help="models, or the versions of one model")
    mlist.add_argument("name", nargs="?")
    mshow = msub.add_parser("show", help="a version's manifest")
    mshow.add_argument("name")
    mshow.add_argument("ref", nargs="?", default="latest", help="version, alias or 'latest'")
    mpull = msub.add_parser("pull", help="download and verify a version")
    mpull.add_argument("name")
    mpull.add_argument("ref", nargs="?", default="latest")
    mpull.add_argument("--dest", required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _quiet_optuna()
    try:
        return _dispatch(args)
    except KubetuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _quiet_optuna() -> None:
    # kubetune prints its own progress; optuna's per-trial INFO lines would repeat it.
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        return _run(args)
    if args.command == "validate":
        return _validate(args.spec)
    if args.command == "trial":
        from kubetune.cli.trial_cmd import run_trial_command

        return run_trial_command(args.spec, args.request, args.output, args.progress)
    if args.command == "models":
        return _models(args)
    raise AssertionError(args.command)


def _load(path: str, overrides: dict[str, int | None] | None = None):  # type: ignore[no-untyped-def]
    from kubetune.core.spec import load_spec

    spec = load_spec(path)
    changes = {k: v for k, v in (overrides or {}).items() if v is not None}
    return spec.updated("limits", changes, source=path) if changes else spec


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from kubetune.core.stop_reason import StopKind
    from kubetune.report import render_summary
    from kubetune.steps.run import run_experiment

    spec = _load(args.spec, {"max_trials": args.max_trials, "parallel": args.parallel})
    console = Console(stderr=True)
    summary = run_experiment(spec, model_repo=args.model_repo, console=console)
    render_summary(summary, Console())
    if summary.stop_kind == StopKind.INTERRUPTED.value:
        return 130
    return 0 if summary.best_trial_number is not None else 1


def _validate(path: str) -> int:
    from kubetune.core.plan import plan_search

    spec = _load(path)
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
    plan = plan_search(spec)
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
    print(f"configs: {size if size is not None and size <= 100_000 else 'infinite (continuous)'}")
    print(f"strategy: {plan.strategy} ({plan.strategy_reason})")
    if spec.fidelity:
        f = spec.fidelity
        print(
            f"fidelity: {f.param} from {f.min} to {f.max}, reduction factor"
            f" {f.reduction_factor}, scheduler {plan.scheduler}"
        )
    print("stops on: " + "; ".join(type(c).__name__ for c in plan.stop_conditions))
    return 0


def _models(args: argparse.Namespace) -> int:
    from kubetune.repository import open_repository
    from kubetune.repository.cli_views import render_model_show, render_models_list

    repo = open_repository(args.model_repo, base_dir=Path.cwd())
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


def _ref(ref: str) -> int | str:
    return int(ref) if ref.isdigit() else ref


if __name__ == "__main__":
    sys.exit(main())
