"""The Kubernetes executor's pieces without a cluster: options, Job names, the Job manifest
(validated against the Kubernetes schemas with ``kubernetes-validate``), and the SIMULATED
API server's own behaviour that the executor relies on (409, selectors, 410 Gone)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes_validate.utils import latest_version

from kubetune.core.spec import parse_spec
from kubetune.errors import SpecError
from kubetune.executors import create_executor, executor_class
from kubetune.executors.kubernetes.image import DEFAULT_IMAGE
from kubetune.executors.kubernetes.job import TrialJob, build_job
from kubetune.executors.kubernetes.naming import job_name, label_value
from kubetune.executors.kubernetes.options import KubernetesOptions
from kubetune.testing.k8s_emulator import KubernetesEmulator

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

FULL_OPTIONS: dict[str, Any] = {
    "namespace": "ml",
    "image": "registry.example/kubetune:1.2.3",
    "image_pull_policy": "IfNotPresent",
    "image_pull_secrets": ["regcred"],
    "resources": {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "8Gi"}},
    "gpus": 1,
    "node_selector": {"nvidia.com/gpu.present": "true"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["gpu"]}]}
                ]
            }
        }
    },
    "service_account": "kubetune-trial",
    "env": {"LOG_LEVEL": "info"},
    "env_from": [{"secretRef": {"name": "kubetune-s3"}}],
    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "datasets"}}],
    "volume_mounts": [{"name": "data", "mountPath": "/data", "readOnly": True}],
    "labels": {"team": "ml"},
    "ttl_seconds_after_finished": 600,
}


def _trial(**changes: Any) -> TrialJob:
    values: dict[str, Any] = {
        "name": job_name("flowers", "flowers", 7, 2),
        "experiment": "flowers",
        "study": "flowers",
        "number": 7,
        "attempt": 2,
        "request_uri": "s3://bucket/trials/x/request.json",
        "result_uri": "s3://bucket/trials/x/result.json",
        "deadline_s": 120.0,
        "report_url": "http://kubetune-controller.ml.svc:8080/v1/reports",
        "report_token": "t0ken",
    }
    return TrialJob(**{**values, **changes})


# --- names ---------------------------------------------------------------------------------


def test_job_names_are_deterministic_dns_labels_and_hashed_when_long() -> None:
    assert job_name("flowers", "flowers", 7, 2) == "kt-flowers-t7-a2"
    assert job_name("flowers", "flowers", 7, 2) == job_name("flowers", "flowers", 7, 2)
    assert job_name("flowers", "other-study", 7, 2) != job_name("flowers", "flowers", 7, 2)
    long_a, long_b = "x" * 80 + "-a", "x" * 80 + "-b"
    for name in (
        job_name(long_a, long_a, 123456, 99),
        job_name("Odd_Name.With CAPS", "Odd_Name.With CAPS", 1, 1),
        job_name("---", "---", 0, 1),
    ):
        assert len(name) <= 63 and DNS1123_LABEL.match(name), name
    # truncation never makes two experiments share a name
    assert job_name(long_a, long_a, 1, 1) != job_name(long_b, long_b, 1, 1)
    assert job_name("Odd_Name", "Odd_Name", 1, 1) != job_name("odd-name", "odd-name", 1, 1)


def test_label_values_are_valid_and_distinct() -> None:
    assert label_value("flowers") == "flowers"
    long = label_value("y" * 100)
    assert len(long) <= 63 and long != label_value("y" * 99)
    assert re.match(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$", label_value("a b/c"))


# --- options -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"gpus": -1}, "executor.gpus"),
        ({"image": ""}, "executor.image"),
        ({"tolerations": {"key": "x"}}, "executor.tolerations"),
        ({"env": {"A": ["x"]}}, "executor.env.A"),
        ({"resources": {"limit": {}}}, "executor.resources.limit"),
        ({"image_pull_policy": "Sometimes"}, "executor.image_pull_policy"),
        ({"mode": "magic"}, "executor.mode"),
        ({"report_port": 70000}, "executor.report_port"),
        ({"pending_timeout_s": 0}, "executor.pending_timeout_s"),
        ({"nodeSelector": {}}, "executor.nodeSelector"),
    ],
)
def test_bad_options_name_their_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError, match=re.escape(field)):
        KubernetesOptions.parse(options)


def test_defaults_use_the_project_image_of_this_version() -> None:
    from kubetune import __version__

    assert (
        KubernetesOptions.parse({}).image
        == DEFAULT_IMAGE
        == f"ghcr.io/kubetune/kubetune:{__version__}"
    )


def test_a_missing_kubeconfig_is_a_spec_error_naming_the_file(tmp_path: Path) -> None:
    spec = parse_spec(
        {
            "name": "k",
            "objective": {"metric": "value", "direction": "minimize"},
            "search_space": {"x": [1, 2]},
            "executor": {"kind": "kubernetes", "kubeconfig": str(tmp_path / "nope")},
        }
    )
    assert executor_class("kubernetes").kind == "kubernetes"
    with pytest.raises(SpecError, match=r"executor\.kubeconfig: .*nope"):
        create_executor(spec, work_dir=tmp_path)


# --- the Job manifest ----------------------------------------------------------------------


def test_the_job_validates_against_the_kubernetes_schema() -> None:
    job = build_job(KubernetesOptions.parse(FULL_OPTIONS), _trial())
    minimal = build_job(KubernetesOptions.parse({}), _trial(deadline_s=None, report_url=None))
    for manifest in (job, minimal):
        kubernetes_validate.validate(manifest, latest_version(), strict=True)
    broken = build_job(KubernetesOptions.parse({}), _trial())
    broken["spec"]["backoffLimit"] = "zero"  # the validator does catch a bad manifest
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, latest_version(), strict=True)


def test_the_job_carries_the_pod_template_options_and_the_trial_contract() -> None:
    job = build_job(KubernetesOptions.parse(FULL_OPTIONS), _trial())
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert spec["backoffLimit"] == 0 and pod["restartPolicy"] == "Never"
    assert spec["activeDeadlineSeconds"] == 120 + 600  # deadline + start-up allowance
    assert spec["ttlSecondsAfterFinished"] == 600
    ignore, fail = spec["podFailurePolicy"]["rules"]
    assert ignore == {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    }
    assert fail["action"] == "FailJob" and fail["onExitCodes"]["values"] == [3]
    assert container["command"][:2] == ["kubetune", "trial"]
    assert container["command"][2:] == [
        "--request", "s3://bucket/trials/x/request.json",
        "--output", "s3://bucket/trials/x/result.json",
    ]  # fmt: skip
    assert container["resources"]["limits"] == {"memory": "8Gi", "nvidia.com/gpu": 1}
    assert container["image"] == "registry.example/kubetune:1.2.3"
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert container["envFrom"] == [{"secretRef": {"name": "kubetune-s3"}}]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["KUBETUNE_REPORT_URL"].startswith("http://kubetune-controller.ml.svc:8080")
    assert env["LOG_LEVEL"] == "info"
    assert pod["serviceAccountName"] == "kubetune-trial"
    assert pod["nodeSelector"] == FULL_OPTIONS["node_selector"]
    assert pod["tolerations"] == FULL_OPTIONS["tolerations"]
    assert pod["affinity"] == FULL_OPTIONS["affinity"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels["kubetune.dev/trial"] == "7" and labels["kubetune.dev/attempt"] == "2"
    assert labels["kubetune.dev/experiment"] == "flowers" and labels["team"] == "ml"
    assert job["metadata"]["labels"] == labels


def test_the_trial_pod_meets_the_restricted_pod_security_standard() -> None:
    pod = build_job(KubernetesOptions.parse(FULL_OPTIONS), _trial())["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["readOnlyRootFilesystem"] is True
        assert context["runAsNonRoot"] is True
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert "/tmp" in mounts  # scratch for a read-only root
    scratch = next(v for v in pod["volumes"] if v["name"] == mounts["/tmp"])
    assert "emptyDir" in scratch
    assert not any("hostPath" in v for v in pod["volumes"])
    assert pod["automountServiceAccountToken"] is False


# --- the simulated API server --------------------------------------------------------------


@pytest.fixture
def api(tmp_path: Path) -> Any:
    with KubernetesEmulator() as emulator:
        path = tmp_path / "kubeconfig"
        path.write_text(emulator.kubeconfig(namespace="ml"))
        configuration = client.Configuration()
        config.load_kube_config(config_file=str(path), client_configuration=configuration)
        with client.ApiClient(configuration) as api_client:
            yield emulator, client.BatchV1Api(api_client)


def test_simulated_api_refuses_a_second_create_and_filters_by_label(api: Any) -> None:
    emulator, batch = api
    job = build_job(KubernetesOptions.parse({}), _trial())
    batch.create_namespaced_job("ml", job)
    with pytest.raises(ApiException) as conflict:
        batch.create_namespaced_job("ml", job)
    assert conflict.value.status == 409
    other = build_job(KubernetesOptions.parse({}), _trial(name="kt-other", experiment="other"))
    batch.create_namespaced_job("ml", other)
    listed = batch.list_namespaced_job("ml", label_selector="kubetune.dev/experiment=flowers")
    assert [j.metadata.name for j in listed.items] == ["kt-flowers-t7-a2"]
    assert int(listed.metadata.resource_version) >= 2
    assert emulator.requests["create jobs"] == 3


def test_simulated_watch_resumes_from_a_version_and_answers_410_once_expired(api: Any) -> None:
    emulator, batch = api
    batch.create_namespaced_job("ml", build_job(KubernetesOptions.parse({}), _trial()))
    version = batch.list_namespaced_job("ml").metadata.resource_version
    emulator.patch_status("jobs", "ml", "kt-flowers-t7-a2", {"active": 1})
    events = list(
        watch.Watch().stream(
            batch.list_namespaced_job, "ml", resource_version=version, timeout_seconds=1
        )
    )
    assert [(e["type"], e["object"].status.active) for e in events] == [("MODIFIED", 1)]
    emulator.expire_history()
    with pytest.raises(ApiException) as gone:
        list(
            watch.Watch().stream(
                batch.list_namespaced_job, "ml", resource_version=version, timeout_seconds=1
            )
        )
    assert gone.value.status == 410


# --- the command line ----------------------------------------------------------------------


def test_run_executor_flag_overrides_the_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from kubetune.cli.main import main
    from kubetune.cli.settings import load_run_spec

    path = tmp_path / "spec.yaml"
    path.write_text(
        "name: flag\nobjective: {metric: value, direction: minimize}\n"
        "search_space: {x: [1, 2]}\nexecutor: {kind: kubernetes, namespace: ml}\n"
    )
    assert load_run_spec(str(path), environ={}).executor.options == {"namespace": "ml"}
    same = load_run_spec(str(path), environ={}, executor="kubernetes").executor
    assert (same.kind, same.options) == ("kubernetes", {"namespace": "ml"})
    other = load_run_spec(str(path), environ={}, executor="subprocess").executor
    assert (other.kind, other.options) == ("subprocess", {})  # its options were kubernetes'
    assert main(["run", str(path), "--executor", "nope"]) == 2
    assert "--executor: unknown executor 'nope'" in capsys.readouterr().err


def test_an_unreachable_api_server_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from kubetune.errors import KubetuneError
    from kubetune.executors.kubernetes import cluster as module  # where the sync wait lives
    from kubetune.testing.executors import request

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: k, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u, namespace: ml}}]\n"
    )
    spec = parse_spec(
        {
            "name": "k",
            "objective": {"metric": "value", "direction": "minimize"},
            "search_space": {"x": [1, 2]},
            "executor": {
                "kind": "kubernetes", "kubeconfig": str(kubeconfig), "report_host": "127.0.0.1",
            },
        }
    )  # fmt: skip
    monkeypatch.setattr(module, "SYNC_TIMEOUT_S", 1.0)
    with (
        create_executor(spec, work_dir=tmp_path / "trials") as executor,
        pytest.raises(
            KubetuneError, match=rf"namespace ml at http://127.0.0.1:{port}: cannot list"
        ),
    ):
        executor.submit(request(0))


def test_a_missing_kubernetes_client_is_a_spec_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    for name in [m for m in sys.modules if m.startswith("kubetune.executors.kubernetes.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "kubernetes", None)  # import kubernetes -> ImportError
    with pytest.raises(SpecError, match=r"needs the 'kubernetes' package.*kubetune\[k8s\]"):
        executor_class("kubernetes")


def test_how_a_pod_ended_is_read_from_its_status() -> None:
    from kubetune.executors.kubernetes.pods import pod_end, waiting_reason

    def pod(created: str, **status: Any) -> dict[str, Any]:
        return {"metadata": {"creationTimestamp": created}, "status": status}

    log = "loading data\nTraceback (most recent call last):\n  File x\nMemoryError\n"
    crashed = pod(
        "2026-01-01T00:00:02Z",
        phase="Failed",
        containerStatuses=[
            {"name": "trial", "state": {"terminated": {"exitCode": 1, "message": log}}}
        ],
    )
    preempted = pod(
        "2026-01-01T00:00:01Z",
        phase="Failed",
        conditions=[{"type": "DisruptionTarget", "status": "True"}],
    )
    end = pod_end([preempted, crashed])
    assert end is not None and end.exit_code == 1
    assert end.message == "Traceback (most recent call last): | File x | MemoryError"
    assert pod_end([preempted]) is None  # a disrupted pod is not how the trial ended
    lost = pod_end([pod("t", phase="Failed", reason="NodeLost", message="node gone")])
    assert lost is not None and lost.exit_code is None and lost.message == "NodeLost: node gone"
    pulling = pod(
        "t",
        phase="Pending",
        containerStatuses=[
            {"name": "trial", "state": {"waiting": {"reason": "ContainerCreating"}}}
        ],
    )
    assert waiting_reason(pulling) is None  # still starting, not stuck


def test_trial_pods_are_what_the_shipped_network_policies_let_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Job's pods carry the labels manifests/' NetworkPolicies select trial pods by, and
    in a cluster the controller listens on the port the trial -> controller policy opens."""
    import yaml

    policies = list(
        yaml.safe_load_all(
            (Path(__file__).parents[1] / "manifests/base/networkpolicies.yaml").read_text()
        )
    )
    job = build_job(KubernetesOptions.parse({}), _trial())
    pod_labels = job["spec"]["template"]["metadata"]["labels"]

    def selects(selector: dict[str, Any]) -> bool:
        for key, value in selector.get("matchLabels", {}).items():
            if pod_labels.get(key) != value:
                return False
        for expr in selector.get("matchExpressions", []):
            if expr["operator"] != "In" or pod_labels.get(expr["key"]) not in expr["values"]:
                return False
        return True

    trial_policies = [p for p in policies if p and selects(p["spec"]["podSelector"])]
    specific = [p for p in trial_policies if p["spec"]["podSelector"]]  # not default-deny/DNS
    assert specific, "no NetworkPolicy selects the executor's trial pods"
    controller_ports = {
        port["port"]
        for policy in specific
        for rule in policy["spec"].get("egress", [])
        for peer in rule.get("to", [])
        if peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component")
        == "controller"
        for port in rule.get("ports", [])
    }
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    in_cluster = KubernetesOptions.parse({})
    assert in_cluster.report_port in controller_ports, controller_ports
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    assert KubernetesOptions.parse({}).report_port == 0  # out of a cluster: any free port
