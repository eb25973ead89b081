"""Every study and trial attribute key kubetune writes, defined once.

Readers (the report, the steps, tests, other tools reading a study) import the names from
here, so a key cannot drift between the writer and its readers.
"""

from __future__ import annotations

__all__ = [
    "ATTEMPT",
    "CONTROLLER_DEATHS",
    "CURVE_PREDICTION",
    "DURATION",
    "FAILURE",
    "FIXED_PARAMS",
    "GRID_ID",
    "LEASE",
    "MESSAGE",
    "METRICS",
    "PARAMS",
    "PARENT",
    "PBT",
    "RESUME",
    "RETRIED",
    "RETRY_OF",
    "SCHEDULER",
    "STRATEGY",
    "WARM_START",
]

# --- trial user_attrs -------------------------------------------------------------------
#: 1 for a config's first run, n for its n-th (a retry is a trial of its own).
ATTEMPT = "kubetune:attempt"
#: On a retry: the number of the config's first trial (its seed derives from it).
RETRY_OF = "kubetune:retry_of"
#: How many controllers died in a row while this config ran. Their deaths cost it no retry,
#: up to ``MAX_CONTROLLER_DEATHS`` in a row; each one past it costs one (see the loop).
CONTROLLER_DEATHS = "kubetune:controller_deaths"
#: On a failed trial: True when the same config is queued again (not a final failure).
RETRIED = "kubetune:retried"
#: The structured params the trial ran with (lists per layer, as the trainer saw them).
PARAMS = "kubetune:params"
#: On an evolution child: the number of the trial it mutates (it may start from its weights).
PARENT = "kubetune:parent"
#: On a pbt trial: its member, interval and the trial it exploited (None when it went on).
PBT = "kubetune:pbt"
#: On a config the looping pipeline promoted: how each rung after the first started, by
#: budget: ``{"15": {"resumed_from": 5}}`` or ``{"15": {"from_scratch": "<why>"}}``.
RESUME = "kubetune:resume"
#: On a failed trial: the failure kind (a ``TrialFailure`` value) and its message.
FAILURE = "failure"
MESSAGE = "message"
#: On a trial queued by a warm start: where its config came from (``study#trial`` or
#: ``model vN``).
WARM_START = "kubetune:warm_start"
#: Every metric the trial reported, and its own measured duration in seconds.
METRICS = "metrics"
DURATION = "duration_s"
#: The curve scheduler's last prediction for the trial at the full budget (see
#: ``kubetune.core.curve_pruner``): step, predicted, std, reference, p_better, pruned.
CURVE_PREDICTION = "kubetune:curve_prediction"

# --- trial system_attrs -----------------------------------------------------------------
#: Index of the grid config a grid-search trial runs.
GRID_ID = "kubetune:grid_id"
#: Written by optuna's ``enqueue_trial`` (read, never written, by kubetune).
FIXED_PARAMS = "fixed_params"

# --- study user_attrs -------------------------------------------------------------------
STRATEGY = "kubetune:strategy"
SCHEDULER = "kubetune:scheduler"

# --- study system_attrs -----------------------------------------------------------------
#: The controller lease: who runs the study now (see ``kubetune.core.lease``).
LEASE = "kubetune:lease"
