"""A whole run on the real PostgreSQL study (the .ci/run server; fails under CI without it)
with the database password and S3 credentials in its environment: neither appears in the
output, the run folder (summary, report, trial files) or the study's stored attributes.

The S3 credentials are set but unused here (the model repository is a local folder): the
S3 adapter's own tests cover what it prints against a simulated S3 server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import optuna
import pytest

from kubetune.core import optuna_compat as compat
from kubetune.core.storage import open_storage
from kubetune.testing.tools import postgres_url

SRC = Path(__file__).resolve().parents[1] / "src"
S3_SECRET = "s3-Secret-Key-4f1e9b"
S3_KEY_ID = "AKIAKUBETUNETEST0001"

SPEC = """
name: {name}
objective: {{metric: val_accuracy, direction: maximize}}
data: {{source: "sklearn:iris"}}
trainer: {{kind: sklearn, estimator: sklearn.linear_model.LogisticRegression}}
search_space:
  C: {{type: float, low: 0.01, high: 10.0, log: true}}
strategy: {{name: random}}
limits: {{max_trials: 3, parallel: 1}}
seed: 0
"""


@pytest.mark.slow
def test_a_run_on_postgresql_shows_no_credential(tmp_path: Path) -> None:
    database = postgres_url()
    password = database.split("://", 1)[1].split("@", 1)[0].partition(":")[2]
    assert password, "the test database URL must carry a password"
    name = f"secrets-{uuid.uuid4().hex[:8]}"
    (tmp_path / "spec.yaml").write_text(SPEC.format(name=name))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
        "KUBETUNE_STORAGE": database,
        "AWS_ACCESS_KEY_ID": S3_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET,
    }
    result = subprocess.run(
        [sys.executable, "-m", "kubetune", "run", "spec.yaml", "--output", "json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    secrets = (password, S3_SECRET, S3_KEY_ID)
    for secret in secrets:
        assert secret not in result.stdout + result.stderr

    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "spec.yaml"]
    assert any(p.name == "summary.json" for p in written)
    assert any(p.name == "report.html" for p in written)
    for path in written:
        data = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in data, f"{path.relative_to(tmp_path)} holds a secret"

    study = optuna.load_study(study_name=name, storage=open_storage(database))
    stored = repr(compat.study_system_attrs(study)) + repr(study.user_attrs)
    stored += "".join(repr(t.system_attrs) + repr(t.user_attrs) for t in study.trials)
    assert len(study.trials) == 3
    for secret in secrets:
        assert secret not in stored
