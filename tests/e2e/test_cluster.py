"""The local kind cluster (cluster/): up through the package, a Ready node, a pod that
resolves a Service through CoreDNS, Dapr's control plane injecting a sidecar that passes the
restricted Pod Security Standard and gets its certificate from sentry, the resource metrics API
(metrics-server) answering for the node and the pods, then down. The NetworkPolicy check waits
for kube-router's firewall to be part of `up`. The first
run on a machine that cannot pull kind's node image builds it (tens of minutes); later runs
take about a minute.

Deselected by default: `./run_tests.sh -m kind`.
"""

import json
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from cluster import app_images, dapr, kind, metrics_server
from cluster.config import cluster_settings
from cluster.docker import Engine
from cluster.versions import KUBERNETES_VERSION, PAUSE_IMAGE_TAG

pytestmark = [pytest.mark.kind, pytest.mark.timeout(3 * 3600)]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Engine]:
    """The cluster; deleted afterwards unless it was up before the tests."""
    was_up = kind.is_up()
    running = kind.up()
    try:
        yield running
    finally:
        if not was_up:
            kind.down()


def test_the_node_is_ready(cluster: Engine) -> None:
    nodes = json.loads(kind.node_kubectl(cluster, "get", "nodes", "-o", "json"))["items"]
    assert len(nodes) == 1
    conditions = {c["type"]: c["status"] for c in nodes[0]["status"]["conditions"]}
    assert conditions["Ready"] == "True"
    assert nodes[0]["status"]["nodeInfo"]["kubeletVersion"].startswith(KUBERNETES_VERSION[:5])


def test_a_pod_resolves_a_service_through_coredns(cluster: Engine) -> None:
    # kube-proxy's image is on the node already (Debian with getent), so nothing is pulled.
    pod = f"dns-check-{uuid.uuid4().hex[:6]}"
    image = f"registry.k8s.io/kube-proxy:{KUBERNETES_VERSION}"
    kind.node_kubectl(cluster, "run", pod, f"--image={image}", "--image-pull-policy=Never",
                      "--restart=Never", "--command", "--",
                      "getent", "hosts", "kubernetes.default.svc.cluster.local")  # fmt: skip
    try:
        phase = _wait_for_phase(cluster, pod, {"Succeeded", "Failed"})
        output = kind.node_kubectl(cluster, "logs", pod)
        assert phase == "Succeeded", output
        service_ip = kind.node_kubectl(
            cluster, "get", "service", "kubernetes", "-o", "jsonpath={.spec.clusterIP}"
        )
        assert output.split()[0] == service_ip
    finally:
        kind.node_kubectl(cluster, "delete", "pod", pod, "--wait=false")


def _wait_for_phase(cluster: Engine, pod: str, phases: set[str]) -> str:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        phase = kind.node_kubectl(cluster, "get", "pod", pod, "-o", "jsonpath={.status.phase}")
        if phase in phases:
            return phase
        time.sleep(1)
    raise AssertionError(
        f"pod {pod} did not finish: {kind.node_kubectl(cluster, 'describe', 'pod', pod)}"
    )


def test_an_injected_sidecar_passes_restricted_admission_with_mtls(cluster: Engine) -> None:
    namespace = f"dapr-check-{uuid.uuid4().hex[:6]}"
    _kubectl("create", "namespace", namespace)
    try:
        _kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
        refused = _kubectl_result("-n", namespace, "run", "root-pod", "--dry-run=server",
                                  f"--image=registry.k8s.io/pause:{PAUSE_IMAGE_TAG}")  # fmt: skip
        assert refused.returncode != 0
        assert "violates PodSecurity" in refused.stderr
        _kubectl("-n", namespace, "apply", "-f", "-", stdin=json.dumps(_restricted_deployment()))
        _kubectl("-n", namespace, "rollout", "status", "deployment/sidecar-check", "--timeout=180s")
        pods = json.loads(_kubectl("-n", namespace, "get", "pods", "-o", "json"))["items"]
        assert len(pods) == 1
        containers = [container["name"] for container in pods[0]["spec"]["containers"]]
        assert containers == ["pause", "daprd"]
        statuses = {s["name"]: s["ready"] for s in pods[0]["status"]["containerStatuses"]}
        assert statuses == {"pause": True, "daprd": True}
        log = _kubectl("-n", namespace, "logs", pods[0]["metadata"]["name"], "-c", "daprd")
        assert "Security is initialized successfully" in log  # sentry issued its SVID
        assert "mTLS is disabled" not in log
        mtls = _kubectl("-n", dapr.NAMESPACE, "get", "configurations.dapr.io", "daprsystem",
                        "-o", "jsonpath={.spec.mtls.enabled}")  # fmt: skip
        assert mtls == "true"
    finally:
        _kubectl("delete", "namespace", namespace, "--wait=false")


def test_the_metrics_api_answers_for_the_node_and_the_pods(cluster: Engine) -> None:
    conditions = json.loads(_kubectl("get", "apiservice", metrics_server.APISERVICE,
                                     "-o", "jsonpath={.status.conditions}"))  # fmt: skip
    assert {c["type"]: c["status"] for c in conditions}["Available"] == "True"
    nodes = json.loads(_kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes"))["items"]
    assert [node["metadata"]["name"] for node in nodes] == [
        f"{cluster_settings.CLUSTER_NAME}-control-plane"
    ]
    assert set(nodes[0]["usage"]) >= {"cpu", "memory"}
    pods = _pod_metrics("kube-system")
    assert any(name.startswith("metrics-server-") for name in pods)
    assert all(set(usage) >= {"cpu", "memory"} for usage in pods.values())
    top = _kubectl("top", "pods", "-n", "kube-system", "--no-headers")
    assert "coredns-" in top


def _pod_metrics(namespace: str) -> dict[str, dict[str, str]]:
    """Each pod's first container's usage, once metrics-server has scraped the pods (a pod's
    metrics appear after the scrape that follows its start)."""
    path = f"/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods"
    deadline = time.monotonic() + 120
    while True:
        items = json.loads(_kubectl("get", "--raw", path))["items"]
        pods = {item["metadata"]["name"]: item["containers"][0]["usage"] for item in items
                if item["containers"]}  # fmt: skip
        if any(name.startswith("metrics-server-") for name in pods) or time.monotonic() > deadline:
            return pods
        time.sleep(5)


ROLES = ("open", "guarded")  # two servers; a policy denies all ingress to the second
# Tries both servers until the guarded one is refused (the agent applies a new policy within
# seconds), then reports both: without enforcement it ends with guarded=True.
CLIENT = """
import os, socket, time
def reach(ip):
    try:
        socket.create_connection((ip, 8080), timeout=2).close()
        return True
    except OSError:
        return False
for _ in range(60):
    if not reach(os.environ["GUARDED"]):
        break
    time.sleep(1)
print(f"open={reach(os.environ['OPEN'])} guarded={reach(os.environ['GUARDED'])}")
"""


@pytest.mark.skip(reason="the NetworkPolicy agent (cluster/network_policy.py) is not in `up` yet")
def test_a_network_policy_denying_ingress_blocks_a_client(cluster: Engine) -> None:
    namespace = f"netpol-check-{uuid.uuid4().hex[:6]}"
    image = app_images.build(cluster, app_images.offline(cluster)).image("api")
    _kubectl("create", "namespace", namespace)
    try:
        objects = [_server(role, image) for role in ROLES] + [_deny_ingress()]
        listed = {"apiVersion": "v1", "kind": "List", "items": objects}
        _kubectl("-n", namespace, "apply", "-f", "-", stdin=json.dumps(listed))
        _kubectl("-n", namespace, "wait", "--for=condition=Ready", "pod", "--all", "--timeout=180s")
        ip = "jsonpath={.status.podIP}"
        ips = {role: _kubectl("-n", namespace, "get", "pod", role, "-o", ip) for role in ROLES}
        _kubectl("-n", namespace, "run", "client", f"--image={image}",
                 "--image-pull-policy=Never", "--restart=Never",
                 f"--env=OPEN={ips['open']}", f"--env=GUARDED={ips['guarded']}",
                 "--command", "--", "python3", "-c", CLIENT)  # fmt: skip
        _kubectl("-n", namespace, "wait", "--for=jsonpath={.status.phase}=Succeeded",
                 "pod/client", "--timeout=180s")  # fmt: skip
        assert _kubectl("-n", namespace, "logs", "client").split() == ["open=True", "guarded=False"]
    finally:
        _kubectl("delete", "namespace", namespace, "--wait=false")


def _server(role: str, image: str) -> dict[str, object]:
    """A pod answering TCP on 8080 (Python's http.server in the API's image, on the node)."""
    container = {
        "name": "server",
        "image": image,
        "imagePullPolicy": "Never",
        "command": ["python3", "-m", "http.server", "8080"],
        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 2},
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": role, "labels": {"role": role}},
        "spec": {"containers": [container]},
    }


def _deny_ingress() -> dict[str, object]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "deny-ingress"},
        "spec": {"podSelector": {"matchLabels": {"role": "guarded"}}, "policyTypes": ["Ingress"]},
    }


def _restricted_deployment() -> dict[str, object]:
    """The pause image (already on the node) as a non-root, capability-free pod: what the
    restricted profile asks of the app's own container; the injector makes daprd comply."""
    labels = {"app": "sidecar-check"}
    annotations = {"dapr.io/enabled": "true", "dapr.io/app-id": "sidecar-check"}
    container = {
        "name": "pause",
        "image": f"registry.k8s.io/pause:{PAUSE_IMAGE_TAG}",
        "imagePullPolicy": "Never",
        "securityContext": {"allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}},
    }  # fmt: skip
    pod_security = {"runAsNonRoot": True, "runAsUser": 65532,
                    "seccompProfile": {"type": "RuntimeDefault"}}  # fmt: skip
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "sidecar-check", "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": {
                    "securityContext": pod_security,
                    "containers": [container],
                },
            },
        },
    }


def _kubectl(*args: str, stdin: str | None = None) -> str:
    result = _kubectl_result(*args, stdin=stdin)
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result.stdout


def _kubectl_result(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The host's kubectl with the kubeconfig `up` wrote (helm used it to install Dapr)."""
    command = [str(kind.kubectl()), "--kubeconfig", str(dapr.KUBECONFIG), *args]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=240,
                          check=False)  # fmt: skip
