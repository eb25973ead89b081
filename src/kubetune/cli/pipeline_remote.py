"""``kubetune pipeline upload|submit|schedule|runs|status``: a compiled pipeline on a
Kubeflow Pipelines API, through ``kfp.Client``.

    kubetune pipeline upload pipeline.yaml --name tune-digits [--version v2]
    kubetune pipeline submit --pipeline tune-digits --experiment digits --param max_trials=40
    kubetune pipeline schedule --pipeline tune-digits --cron "0 0 3 * * *" --no-catchup
    kubetune pipeline runs [--experiment digits] [--recurring]
    kubetune pipeline status RUN_ID

Where the API is and how to authenticate come from flags, else the environment
(``KF_PIPELINES_ENDPOINT``, ``KF_PIPELINES_NAMESPACE``, ``KF_PIPELINES_TOKEN``,
``KF_PIPELINES_COOKIES``, ``KF_PIPELINES_CA_BUNDLE``). kfp is imported only when a command
runs, so ``kubetune --help`` works without the kfp extra.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubetune.kfp_client import KfpRemote, PipelineRef

__all__ = ["add_remote_commands"]


def add_remote_commands(group: Any) -> None:
    """Add upload/submit/schedule/runs/status to the ``pipeline`` subcommand group
    (``group`` is what ``add_subparsers`` returned); each sets ``handler``."""
    upload = group.add_parser("upload", help="upload a compiled pipeline (or a new version of one)")
    upload.add_argument("file", help="compiled pipeline YAML (kubetune pipeline compile)")
    upload.add_argument("--name", required=True, help="pipeline name in KFP")
    upload.add_argument(
        "--version",
        help="version name when the pipeline exists (default: upload time and file sha256)",
    )
    upload.add_argument("--description", help="shown in the KFP UI")
    _connection_options(upload)
    upload.set_defaults(handler=_upload)

    submit = group.add_parser("submit", help="start one run of a pipeline in an experiment")
    _pipeline_options(submit)
    submit.add_argument("--run-name", help="run name (default: pipeline name and time)")
    submit.add_argument(
        "--cache",
        choices=("on", "off"),
        help="override every task's caching (default: as compiled)",
    )
    _connection_options(submit)
    submit.set_defaults(handler=_submit)

    schedule = group.add_parser(
        "schedule", help="create a recurring run (re-tuning on a cron schedule)"
    )
    _pipeline_options(schedule)
    schedule.add_argument(
        "--cron",
        required=True,
        help="KFP cron, 6 fields with seconds first, e.g. '0 0 3 * * *' (03:00 daily),"
        " or @daily, @every 6h",
    )
    schedule.add_argument("--name", dest="job_name", help="recurring run name")
    schedule.add_argument(
        "--max-concurrency", type=int, default=1, help="runs of it at the same time (default 1)"
    )
    schedule.add_argument(
        "--no-catchup",
        action="store_true",
        help="after a pause, run once for the latest missed time, not for every missed one",
    )
    schedule.add_argument("--start", help="first time it may run (RFC 3339; default now)")
    schedule.add_argument("--end", help="last time it may run (RFC 3339; default never ends)")
    _connection_options(schedule)
    schedule.set_defaults(handler=_schedule)

    runs = group.add_parser("runs", help="list the newest runs (or recurring runs)")
    runs.add_argument("--experiment", help="only this experiment's")
    runs.add_argument("--recurring", action="store_true", help="list recurring runs instead")
    runs.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    _output_option(runs)
    _connection_options(runs)
    runs.set_defaults(handler=_runs)

    status = group.add_parser("status", help="state, parameters and tasks of one run")
    status.add_argument("run_id", help="run id (as printed by submit or runs)")
    status.add_argument("--recurring", action="store_true", help="RUN_ID is a recurring run's id")
    _output_option(status)
    _connection_options(status)
    status.set_defaults(handler=_status)


def _pipeline_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", help="compiled pipeline YAML (or use --pipeline)")
    parser.add_argument("--pipeline", help="an uploaded pipeline, by name")
    parser.add_argument(
        "--version", help="version name of --pipeline (default: its newest version)"
    )
    parser.add_argument(
        "--experiment",
        default="Default",
        help="KFP experiment, created if missing (default: Default)",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="pipeline parameter, typed as the pipeline declares it (repeatable)",
    )
    parser.add_argument("--service-account", help="Kubernetes service account of the run's pods")
    _output_option(parser)


def _output_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output",
        choices=("text", "json"),
        default="text",
        help="print the result as text (default) or as one JSON document on stdout",
    )


def _connection_options(parser: argparse.ArgumentParser) -> None:
    from kubetune.kfp_client.connection import (
        ENV_CA_BUNDLE,
        ENV_COOKIES,
        ENV_HOST,
        ENV_NAMESPACE,
        ENV_TOKEN,
    )

    conn = parser.add_argument_group("Kubeflow Pipelines connection")
    conn.add_argument("--host", help=f"KFP API URL (default: ${ENV_HOST})")
    conn.add_argument(
        "--namespace", help=f"profile namespace of a multi-user KFP (default: ${ENV_NAMESPACE})"
    )
    conn.add_argument("--token-file", help=f"file holding a bearer token (default: ${ENV_TOKEN})")
    conn.add_argument(
        "--cookies", help=f"Cookie header value, e.g. an auth session (default: ${ENV_COOKIES})"
    )
    conn.add_argument(
        "--ca-bundle", help=f"CA certificates to verify the host with (default: ${ENV_CA_BUNDLE})"
    )
    conn.add_argument(
        "--insecure-skip-tls-verify", action="store_true", help="do not verify TLS (testing only)"
    )


def _remote(args: argparse.Namespace) -> KfpRemote:
    from kubetune.kfp_client import KfpRemote, KfpSettings

    settings = KfpSettings.resolve(
        host=args.host,
        namespace=args.namespace,
        token_file=args.token_file,
        cookies=args.cookies,
        ca_bundle=args.ca_bundle,
        verify_ssl=not args.insecure_skip_tls_verify,
    )
    return KfpRemote(settings)


def _ref(args: argparse.Namespace) -> PipelineRef:
    from kubetune.kfp_client import PipelineRef

    return PipelineRef(file=args.file, name=args.pipeline, version=args.version)


def _print(args: argparse.Namespace, data: Any, text: str) -> int:
    if args.output == "json":
        from kubetune.cli.json_views import print_json

        print_json(data)
    else:
        print(text)
    return 0


def _upload(args: argparse.Namespace) -> int:
    from kubetune.kfp_client import load_pipeline_file

    load_pipeline_file(args.file)  # a bad file is reported before connecting
    done = _remote(args).upload(
        args.file, args.name, version=args.version, description=args.description
    )
    if done.new_pipeline:
        print(f"uploaded {args.file} as new pipeline {done.pipeline_name} (id {done.pipeline_id})")
    else:
        print(
            f"uploaded {args.file} as version {done.version_name} of pipeline"
            f" {done.pipeline_name} (version id {done.version_id})"
        )
    return 0


def _submit(args: argparse.Namespace) -> int:
    ref = _ref(args)
    run = _remote(args).submit(
        ref,
        experiment=args.experiment,
        run_name=args.run_name,
        params=args.param,
        service_account=args.service_account,
        enable_caching=None if args.cache is None else args.cache == "on",
    )
    return _print(
        args, run.to_dict(), f"submitted run {run.name} (id {run.run_id}) in {args.experiment}"
    )


def _schedule(args: argparse.Namespace) -> int:
    job = _remote(args).schedule(
        _ref(args),
        experiment=args.experiment,
        cron=args.cron,
        name=args.job_name,
        params=args.param,
        max_concurrency=args.max_concurrency,
        no_catchup=args.no_catchup,
        start=args.start,
        end=args.end,
        service_account=args.service_account,
    )
    return _print(
        args,
        job.to_dict(),
        f"scheduled {job.name} (id {job.recurring_run_id}): {job.trigger},"
        f" at most {job.max_concurrency} at a time" + (", no catch-up" if job.no_catchup else ""),
    )


def _runs(args: argparse.Namespace) -> int:
    remote = _remote(args)
    if args.recurring:
        jobs = remote.recurring_runs(experiment=args.experiment, limit=args.limit)
        lines = [f"{j.recurring_run_id}  {j.status:<8}  {j.name}  ({j.trigger})" for j in jobs]
        return _print(args, [j.to_dict() for j in jobs], "\n".join(lines) or "no recurring runs")
    runs = remote.runs(experiment=args.experiment, limit=args.limit)
    lines = [f"{r.run_id}  {r.state:<10}  {r.created_at or '':<20}  {r.name}" for r in runs]
    return _print(args, [r.to_dict() for r in runs], "\n".join(lines) or "no runs")


def _status(args: argparse.Namespace) -> int:
    remote = _remote(args)
    if args.recurring:
        job = remote.recurring_status(args.run_id)
        text = (
            f"{job.name} (id {job.recurring_run_id}): {job.status}, {job.trigger},"
            f" max concurrency {job.max_concurrency}, no catch-up {bool(job.no_catchup)}"
        )
        return _print(args, job.to_dict(), text)
    run = remote.status(args.run_id)
    lines = [f"{run.name} (id {run.run_id}): {run.state}"]
    if run.created_at:
        lines.append(f"  created:  {run.created_at}")
    if run.finished_at:
        lines.append(f"  finished: {run.finished_at}")
    if run.recurring_run_id:
        lines.append(f"  started by recurring run {run.recurring_run_id}")
    if run.error:
        lines.append(f"  error: {run.error}")
    for name, value in sorted(run.parameters.items()):
        lines.append(f"  param {name} = {value}")
    for name, state in run.tasks:
        lines.append(f"  task {name}: {state}")
    return _print(args, run.to_dict(), "\n".join(lines))
