"""NetworkPolicy enforcement on the cluster: kube-router with only its firewall on
(`--run-firewall=true`, no routing, no service proxy), beside the node's own ptp CNI. It turns
each policy into iptables rules and ipsets on the node, matched on pod addresses in the
FORWARD, INPUT and OUTPUT chains, so the CNI needs no change.

Why kube-router: kind's kindnetd and `sigs.k8s.io/kube-network-policies` hand each new
connection to userspace with nftables' `queue` statement, which needs a kernel built with
CONFIG_NFT_QUEUE; kube-router needs only the iptables `set` match and ipset, which kernels
carry more widely.

The binary is built from the `github.com/cloudnativelabs/kube-router/v2` module
(gobuild.BUILDS) and runs on the small Debian base kube-proxy uses (iptables, ipset). The
objects are the module's own: its ServiceAccount and RBAC (`daemonset/generic-kuberouter.yaml`)
and its firewall-only DaemonSet (`daemonset/kube-router-firewall-daemonset.yaml`) without the
parts that install a CNI (its init container, ConfigMap and kubeconfig file): it talks to the
API server with its service account."""

import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from cluster import addons, base, dapr
from cluster.docker import Engine, docker
from cluster.images import KUBE_PROXY_PACKAGES
from cluster.steps import Stages
from cluster.versions import KUBE_ROUTER_VERSION
from devstack.binaries import MissingToolError
from devstack.processes import say

NAME = "kube-router"
NAMESPACE = "kube-system"
MODULE = "github.com/cloudnativelabs/kube-router/v2"
PUBLISHED_IMAGE = f"docker.io/cloudnativelabs/kube-router:{KUBE_ROUTER_VERSION}"
# Ours: a registry name nothing pulls from (the node has the image, pull policy IfNotPresent).
IMAGE = f"localhost/kube-router/kube-router:{KUBE_ROUTER_VERSION}"
BINARY = "/usr/local/bin/kube-router"  # where the published image has it
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding")
# What the firewall-only DaemonSet mounts to install its own CNI; the node keeps ours.
CNI_VOLUMES = ("cni-conf-dir", "kube-router-cfg", "kubeconfig", "host-opt")
WAIT_SECONDS = 240
# The chain its first sync hooks into the node's FORWARD chain (pod-to-pod traffic).
FORWARD_CHAIN = "KUBE-ROUTER-FORWARD"

Objects = list[dict[str, Any]]


def install(running: Engine, stages: Stages, cluster_name: str, kubectl: Path) -> None:
    """The published image where it can be pulled, else ours (built, cached, loaded); then
    apply, and wait for the DaemonSet's pod and its first sync of the node's iptables."""
    image = addons.image(running, stages, cluster_name, NAME, published=PUBLISHED_IMAGE,
                         ours=IMAGE, make_tarball=_make_tarball)  # fmt: skip
    with stages.stage("kube-router install") as facts:
        facts["image"] = image
        command = [str(kubectl), "--kubeconfig", str(dapr.KUBECONFIG)]
        say(f"Installing kube-router {KUBE_ROUTER_VERSION} (NetworkPolicy only) into {NAMESPACE}")
        addons.run([*command, "apply", "-f", "-"],
                   stdin=yaml.safe_dump_all(manifests(*_module_objects(), image)))  # fmt: skip
        addons.run([*command, "-n", NAMESPACE, "rollout", "status", f"daemonset/{NAME}",
                    f"--timeout={WAIT_SECONDS}s"])  # fmt: skip
        facts["firewall_chain"] = _wait_for_firewall(command)


def _wait_for_firewall(kubectl: list[str]) -> str:
    """The rule that hooks the firewall's chain into the node's FORWARD chain, once its first
    sync has added it: the pod is Ready as soon as it starts (it has no readiness probe)."""
    deadline = time.monotonic() + WAIT_SECONDS
    command = [*kubectl, "-n", NAMESPACE, "exec", f"daemonset/{NAME}", "--",
               "iptables", "-w", "5", "-S", "FORWARD"]  # fmt: skip
    while True:
        result = subprocess.run(command, capture_output=True, text=True,
                                timeout=addons.COMMAND_TIMEOUT_SECONDS, check=False)  # fmt: skip
        hook = next((line for line in result.stdout.splitlines() if FORWARD_CHAIN in line), None)
        if hook is not None:
            return hook
        if time.monotonic() > deadline:
            raise MissingToolError(f"{NAME} added no {FORWARD_CHAIN} rule: {result.stderr.strip()}")
        time.sleep(2)


def build(running: Engine, stages: Stages) -> Path:
    """The binary and the image tarball (both cached)."""
    return addons.build(running, stages, NAME, _make_tarball)


def manifests(generic: Objects, firewall: Objects, image: str) -> Objects:
    """The RBAC of the module's generic manifest and the DaemonSet of its firewall-only one,
    changed to run beside our CNI."""
    kept = [item for item in generic if item.get("kind") in RBAC_KINDS]
    daemonset = next(item for item in firewall if item.get("kind") == "DaemonSet")
    pod = daemonset["spec"]["template"]["spec"]
    pod.pop("initContainers", None)
    pod["serviceAccountName"] = NAME
    pod["volumes"] = [volume for volume in pod["volumes"] if volume["name"] not in CNI_VOLUMES]
    container = pod["containers"][0]
    container["image"] = image
    container["imagePullPolicy"] = "IfNotPresent"
    container["args"] = [arg for arg in container["args"] if not arg.startswith("--kubeconfig")]
    container["env"] = [env for env in container["env"] if not env["name"].startswith("KUBE_")]
    container["volumeMounts"] = [mount for mount in container["volumeMounts"]
                                 if mount["name"] not in CNI_VOLUMES]  # fmt: skip
    return [*kept, daemonset]


def _module_objects() -> tuple[Objects, Objects]:
    module = addons.module_dir(NAME, MODULE, KUBE_ROUTER_VERSION) / "daemonset"
    generic, firewall = (
        [item for item in yaml.safe_load_all((module / file).read_text()) if item]
        for file in ("generic-kuberouter.yaml", "kube-router-firewall-daemonset.yaml")
    )
    return generic, firewall


def _make_tarball(running: Engine, binary: Path, tarball: Path) -> None:
    say(f"Making the image {IMAGE}")
    debian = base.debian_image(running, "kube-proxy-base", KUBE_PROXY_PACKAGES)
    container = docker(running, "create", debian).strip()
    try:
        docker(running, "cp", str(binary), f"{container}:{BINARY}")
        docker(running, "commit", "--change", f'ENTRYPOINT ["{BINARY}"]', container, IMAGE)
    finally:
        docker(running, "rm", "-f", container)
    addons.save(running, IMAGE, tarball)
