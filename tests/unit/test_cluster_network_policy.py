"""The NetworkPolicy agent on the local cluster: the release pinned once, and the module's
firewall DaemonSet stripped of what would replace the node's CNI."""

import re
from typing import Any

from cluster import network_policy
from cluster.versions import KUBE_ROUTER_VERSION
from core.config import PROJECT_ROOT


def test_the_module_requires_the_pinned_release() -> None:
    go_mod = (PROJECT_ROOT / "cluster/go/kube-router/go.mod").read_text()
    required = re.search(r"^\s+github\.com/cloudnativelabs/kube-router/v2 (\S+)", go_mod, re.M)
    assert required is not None
    assert required.group(1) == KUBE_ROUTER_VERSION


def _daemonset(name: str, args: list[str]) -> dict[str, Any]:
    """The shape of the module's DaemonSets: a CNI-installing init container, the CNI's
    volumes and a kubeconfig file beside the ones the firewall needs."""
    volumes = ["lib-modules", "cni-conf-dir", "kube-router-cfg", "kubeconfig", "xtables-lock"]
    container = {
        "name": name,
        "image": network_policy.PUBLISHED_IMAGE,
        "args": args,
        "env": [{"name": "NODE_NAME"}, {"name": "KUBE_ROUTER_CNI_CONF_FILE"}],
        "volumeMounts": [{"name": volume} for volume in volumes],
    }
    pod = {"containers": [container], "initContainers": [{"name": "install-cni"}],
           "volumes": [{"name": volume} for volume in volumes]}  # fmt: skip
    return {"kind": "DaemonSet", "spec": {"template": {"spec": pod}}}


def test_the_firewall_runs_with_its_service_account_beside_the_nodes_cni() -> None:
    generic = [{"kind": kind} for kind in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding")]
    generic += [{"kind": "ConfigMap"}, _daemonset("all-features", ["--run-router=true"])]
    firewall = [{"kind": "ConfigMap"}, _daemonset("kube-router", [
        "--run-router=false", "--run-firewall=true", "--run-service-proxy=false",
        "--kubeconfig=/var/lib/kube-router/kubeconfig"])]  # fmt: skip

    objects = network_policy.manifests(generic, firewall, network_policy.IMAGE)

    kinds = [item["kind"] for item in objects]
    assert kinds == ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "DaemonSet"]
    pod = objects[-1]["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    assert pod["serviceAccountName"] == "kube-router"
    assert [volume["name"] for volume in pod["volumes"]] == ["lib-modules", "xtables-lock"]
    container = pod["containers"][0]
    assert container["name"] == "kube-router"
    assert container["image"] == network_policy.IMAGE
    assert container["args"] == ["--run-router=false", "--run-firewall=true",
                                 "--run-service-proxy=false"]  # fmt: skip
    assert [env["name"] for env in container["env"]] == ["NODE_NAME"]
    assert [mount["name"] for mount in container["volumeMounts"]] == ["lib-modules", "xtables-lock"]
