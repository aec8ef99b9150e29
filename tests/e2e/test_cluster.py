"""The local kind cluster (cluster/): up through the package, a Ready node, a pod that
resolves a Service through CoreDNS, then down. The first run on a machine that cannot pull
kind's node image builds it (tens of minutes); later runs take about a minute.

Deselected by default: `./run_tests.sh -m kind`.
"""

import json
import time
import uuid
from collections.abc import Iterator

import pytest

from cluster import kind
from cluster.docker import Engine
from cluster.versions import KUBERNETES_VERSION

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
