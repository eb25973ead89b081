"""The warm worker pod's Job (``mode: worker-pool``): valid against the Kubernetes schema
(``kubernetes-validate``), restricted Pod Security, the labels manifests/' NetworkPolicies
let reach the controller, and one GPU shared by ``trials_per_gpu`` worker processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml
from kubernetes_validate.utils import latest_version

from kubetune.executors.kubernetes.job import WorkerJob, build_worker_job
from kubetune.executors.kubernetes.naming import worker_job_name
from kubetune.executors.kubernetes.options import IN_CLUSTER_REPORT_PORT, KubernetesOptions
from kubetune.testing.pod_security import restricted_violations
from test_k8s_job import DNS1123_LABEL, FULL_OPTIONS


def _worker_job(**options: Any) -> dict[str, Any]:
    parsed = KubernetesOptions.parse({**FULL_OPTIONS, "mode": "worker-pool", **options})
    name = worker_job_name("flowers", "flowers", 3, 2)
    return build_worker_job(
        parsed,
        WorkerJob(
            name=name, experiment="flowers", study="flowers", index=3,
            report_url="http://kubetune-controller.ml.svc:8790/v1/reports",
            report_token="t0ken", slots=parsed.trials_per_gpu,
        ),
    )  # fmt: skip


def test_worker_job_names_are_deterministic_dns_labels_per_generation() -> None:
    name = worker_job_name("flowers", "flowers", 3, 2)
    assert name == "kt-flowers-w3-g2" and DNS1123_LABEL.match(name)
    long = worker_job_name("x" * 80, "x" * 80, 12, 345)
    assert len(long) <= 63 and long.endswith("-w12-g345") and DNS1123_LABEL.match(long)


def test_the_worker_job_validates_and_meets_the_restricted_standard() -> None:
    job = _worker_job(trials_per_gpu=2)
    kubernetes_validate.validate(job, latest_version(), strict=True)
    assert restricted_violations(job) == []
    spec = job["spec"]
    assert spec["backoffLimit"] == 0 and "activeDeadlineSeconds" not in spec
    (container,) = spec["template"]["spec"]["containers"]
    assert container["command"][:2] == ["kubetune", "worker"]
    assert container["command"][container["command"].index("--slots") + 1] == "2"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1  # k processes, one GPU
    assert container["image"] == FULL_OPTIONS["image"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["KUBETUNE_REPORT_URL"].endswith("/v1/reports") and "KUBETUNE_REPORT_TOKEN" in env


def test_worker_pods_are_let_through_to_the_controller_by_the_shipped_policies() -> None:
    policies = [
        p
        for p in yaml.safe_load_all(
            (Path(__file__).parents[1] / "manifests/base/networkpolicies.yaml").read_text()
        )
        if p
    ]
    labels = _worker_job()["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == "worker"
    assert labels["app.kubernetes.io/part-of"] == "kubetune"

    def selects(selector: dict[str, Any]) -> bool:
        exprs = selector.get("matchExpressions", [])
        return (
            bool(selector)
            and all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())
            and all(e["operator"] == "In" and labels.get(e["key"]) in e["values"] for e in exprs)
        )

    ports = {
        port["port"]
        for policy in policies
        if selects(policy["spec"]["podSelector"])
        for rule in policy["spec"].get("egress", [])
        for peer in rule.get("to", [])
        if peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component")
        == "controller"
        for port in rule.get("ports", [])
    }
    assert IN_CLUSTER_REPORT_PORT in ports, ports
