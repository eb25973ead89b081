"""Kubeflow Pipelines API access for the ``kubetune pipeline`` commands (kfp extra).

Importing this package does not import kfp; :func:`connect` does.
"""

from kubetune.kfp_client.connection import KfpError, KfpSettings, connect
from kubetune.kfp_client.cron import CronError, validate_cron
from kubetune.kfp_client.params import ParamError, parse_params
from kubetune.kfp_client.remote import KfpRemote, PipelineRef, load_pipeline_file

__all__ = [
    "CronError",
    "KfpError",
    "KfpRemote",
    "KfpSettings",
    "ParamError",
    "PipelineRef",
    "connect",
    "load_pipeline_file",
    "parse_params",
    "validate_cron",
]
