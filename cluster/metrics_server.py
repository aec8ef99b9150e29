"""metrics-server on the cluster, so that `kubectl top` answers and the HPAs get CPU figures.

The binary is built from the `sigs.k8s.io/metrics-server` module (gobuild.BUILDS) and becomes
an image as its own Dockerfile makes it: the static binary at /metrics-server, user 65534. The
objects are the module's release manifests (`manifests/overlays/release`, rendered with
`kubectl kustomize`: RBAC, the APIService v1beta1.metrics.k8s.io, the Service, the
Deployment) with two changes that kind clusters usually need: the kubelet serves a
self-signed certificate (`--kubelet-insecure-tls`) and is reached on the node's InternalIP."""

import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from cluster import addons, dapr
from cluster.docker import Engine
from cluster.steps import Stages
from cluster.versions import METRICS_SERVER_VERSION
from devstack.binaries import MissingToolError
from devstack.processes import say

NAME = "metrics-server"
NAMESPACE = "kube-system"
PUBLISHED_IMAGE = f"registry.k8s.io/metrics-server/metrics-server:{METRICS_SERVER_VERSION}"
# Ours: a registry name nothing pulls from (the node has the image, pull policy IfNotPresent).
IMAGE = f"localhost/metrics-server/metrics-server:{METRICS_SERVER_VERSION}"
USER = 65534  # as the published image
APISERVICE = "v1beta1.metrics.k8s.io"
# What kind's kubelet needs: its serving certificate is self-signed, its address the node's IP.
KIND_ARGS = {
    "--kubelet-insecure-tls": None,
    "--kubelet-preferred-address-types": "InternalIP",
}
WAIT_SECONDS = 240  # the rollout, the APIService (below the commands' own timeout)
# metrics-server answers after its second scrape of the kubelet (a 15 s resolution).
METRICS_TIMEOUT_SECONDS = 180


def install(running: Engine, stages: Stages, cluster_name: str, kubectl: Path) -> None:
    """The published image where it can be pulled, else ours (built, cached, loaded); then
    apply and wait until the metrics API answers for the node."""
    image = addons.image(running, stages, cluster_name, NAME, published=PUBLISHED_IMAGE,
                         ours=IMAGE, make_tarball=_make_tarball)  # fmt: skip
    with stages.stage("metrics-server install") as facts:
        facts["image"] = image
        base = [str(kubectl), "--kubeconfig", str(dapr.KUBECONFIG)]
        say(f"Installing metrics-server {METRICS_SERVER_VERSION} into {NAMESPACE}")
        addons.run([*base, "apply", "-f", "-"], stdin=_manifests(base, image))
        addons.run([*base, "-n", NAMESPACE, "rollout", "status", f"deployment/{NAME}",
                    f"--timeout={WAIT_SECONDS}s"])  # fmt: skip
        addons.run([*base, "wait", "--for=condition=Available", f"apiservice/{APISERVICE}",
                    f"--timeout={WAIT_SECONDS}s"])  # fmt: skip
        facts["top_nodes"] = _wait_for_node_metrics(base)


def build(running: Engine, stages: Stages) -> Path:
    """The binary and the image tarball (both cached)."""
    return addons.build(running, stages, NAME, _make_tarball)


def manifests(objects: list[dict[str, Any]], image: str) -> list[dict[str, Any]]:
    """The module's objects with `image` and kind's kubelet arguments."""
    for item in objects:
        if item.get("kind") != "Deployment":
            continue
        container = item["spec"]["template"]["spec"]["containers"][0]
        container["image"] = image
        container["imagePullPolicy"] = "IfNotPresent"
        args = [arg for arg in container["args"] if arg.split("=", 1)[0] not in KIND_ARGS]
        args += [flag if value is None else f"{flag}={value}" for flag, value in KIND_ARGS.items()]
        container["args"] = args
    return objects


def _manifests(kubectl: list[str], image: str) -> str:
    module = addons.module_dir(NAME, f"sigs.k8s.io/{NAME}", METRICS_SERVER_VERSION)
    rendered = addons.run([*kubectl, "kustomize", str(module / "manifests/overlays/release")])
    objects = [item for item in yaml.safe_load_all(rendered) if item]
    return yaml.safe_dump_all(manifests(objects, image), sort_keys=False)


def _wait_for_node_metrics(kubectl: list[str]) -> str:
    """`kubectl top nodes` once it answers (it fails until the first metrics are in)."""
    deadline = time.monotonic() + METRICS_TIMEOUT_SECONDS
    command = [*kubectl, "top", "nodes", "--no-headers"]
    while True:
        result = subprocess.run(command, capture_output=True, text=True,
                                timeout=addons.COMMAND_TIMEOUT_SECONDS, check=False)  # fmt: skip
        if result.returncode == 0 and result.stdout.strip():
            return result.stdout.strip()
        if time.monotonic() > deadline:
            raise MissingToolError(f"kubectl top nodes did not answer: {result.stderr.strip()}")
        time.sleep(5)


def _make_tarball(running: Engine, binary: Path, tarball: Path) -> None:
    dapr.make_static_image(running, binary, IMAGE, tarball, user=USER)
