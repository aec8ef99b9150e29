"""metrics-server on the local cluster: the release pinned once, and the module's Deployment
changed only where kind's kubelet needs it."""

import re
from typing import Any

from cluster import metrics_server
from cluster.versions import METRICS_SERVER_VERSION
from core.config import PROJECT_ROOT


def test_the_module_requires_the_pinned_release() -> None:
    go_mod = (PROJECT_ROOT / "cluster/go/metrics-server/go.mod").read_text()
    required = re.search(r"^\s+sigs\.k8s\.io/metrics-server (\S+)", go_mod, re.M)
    assert required is not None
    assert required.group(1) == METRICS_SERVER_VERSION


def _release_objects() -> list[dict[str, Any]]:
    """The shape of the module's release manifests (its Deployment's arguments as shipped)."""
    container = {
        "name": "metrics-server",
        "image": metrics_server.PUBLISHED_IMAGE,
        "args": ["--cert-dir=/tmp", "--secure-port=10250",
                 "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
                 "--kubelet-use-node-status-port", "--metric-resolution=15s"],
    }  # fmt: skip
    deployment = {"kind": "Deployment", "spec": {"template": {"spec": {"containers": [container]}}}}
    return [{"kind": "APIService", "metadata": {"name": metrics_server.APISERVICE}}, deployment]


def test_the_deployment_reaches_kinds_kubelet_by_internal_ip_without_verifying_its_cert() -> None:
    objects = metrics_server.manifests(_release_objects(), metrics_server.IMAGE)

    container = objects[1]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == metrics_server.IMAGE
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["args"] == [
        "--cert-dir=/tmp", "--secure-port=10250", "--kubelet-use-node-status-port",
        "--metric-resolution=15s", "--kubelet-insecure-tls",
        "--kubelet-preferred-address-types=InternalIP",
    ]  # fmt: skip
    assert objects[0] == {"kind": "APIService", "metadata": {"name": metrics_server.APISERVICE}}
