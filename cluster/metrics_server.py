"""metrics-server on the cluster, so that `kubectl top` answers and the HPAs get CPU figures.

The binary is built from the `sigs.k8s.io/metrics-server` module (gobuild.BUILDS) and becomes
an image as its own Dockerfile makes it: the static binary at /metrics-server, user 65534. The
objects are the module's release manifests (`manifests/overlays/release`, rendered with
`kubectl kustomize`: RBAC, the APIService v1beta1.metrics.k8s.io, the Service, the
Deployment) with two changes that kind clusters usually need: the kubelet serves a
self-signed certificate (`--kubelet-insecure-tls`) and is reached on the node's InternalIP."""

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from cluster import dapr, gobuild
from cluster.config import BuildOffline, cluster_settings
from cluster.docker import Engine, docker
from cluster.images import IMAGES_DIR
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
COMMAND_TIMEOUT_SECONDS = 300
# metrics-server answers after its second scrape of the kubelet (a 15 s resolution).
METRICS_TIMEOUT_SECONDS = 180
SAVE_TIMEOUT_SECONDS = 600


def install(running: Engine, stages: Stages, cluster_name: str, kubectl: Path) -> None:
    """The published image where it can be pulled, else ours (built, cached, loaded); then
    apply and wait until the metrics API answers for the node."""
    with stages.stage("metrics-server published image") as facts:
        published = facts["reachable"] = _published_reachable(running)
    image = PUBLISHED_IMAGE if published else IMAGE
    if not published:
        tarball = build(running, stages)
    with stages.stage("metrics-server install") as facts:
        facts["image"] = image
        facts["loaded"] = False if published else _load(running, cluster_name, tarball)
        base = [str(kubectl), "--kubeconfig", str(dapr.KUBECONFIG)]
        say(f"Installing metrics-server {METRICS_SERVER_VERSION} into {NAMESPACE}")
        _run([*base, "apply", "-f", "-"], stdin=_manifests(base, image))
        _run([*base, "-n", NAMESPACE, "rollout", "status", f"deployment/{NAME}",
              f"--timeout={COMMAND_TIMEOUT_SECONDS}s"])  # fmt: skip
        _run([*base, "wait", "--for=condition=Available", f"apiservice/{APISERVICE}",
              f"--timeout={COMMAND_TIMEOUT_SECONDS}s"])  # fmt: skip
        facts["top_nodes"] = _wait_for_node_metrics(base)


def build(running: Engine, stages: Stages) -> Path:
    """The binary and the image tarball (both cached)."""
    with stages.stage("go build metrics-server") as facts:
        facts["cached"] = gobuild.target(NAME).is_dir()
        binary = gobuild.binaries(NAME) / NAME
        facts["bytes"] = binary.stat().st_size
        facts["cold_build"] = gobuild.build_record(NAME)
    with stages.stage("metrics-server image") as facts:
        tarball = _tarball_path()
        facts["cached"] = tarball.exists()
        if not tarball.exists():
            _make_tarball(running, binary, tarball)
        facts["bytes"] = tarball.stat().st_size
    return tarball


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


def module_dir() -> Path:
    """The metrics-server module our build pins, in Go's module cache."""
    go = shutil.which("go")
    if go is None:
        raise MissingToolError("Go is needed to fetch metrics-server's manifests from its module")
    output = _run([go, "mod", "download", "-json", f"sigs.k8s.io/{NAME}@{METRICS_SERVER_VERSION}"],
                  cwd=gobuild.MODULES_DIR / NAME)  # fmt: skip
    return Path(json.loads(output)["Dir"])


def _manifests(kubectl: list[str], image: str) -> str:
    release = module_dir() / "manifests" / "overlays" / "release"
    objects = [item for item in yaml.safe_load_all(_run([*kubectl, "kustomize", str(release)]))
               if item]  # fmt: skip
    return yaml.safe_dump_all(manifests(objects, image), sort_keys=False)


def _published_reachable(running: Engine) -> bool:
    """Whether the node can pull the published image (it pulls through the engine's host
    network, so the engine answering a manifest request is the test)."""
    if cluster_settings.CLUSTER_BUILD_OFFLINE is BuildOffline.ALWAYS:
        return False
    try:
        subprocess.run(["docker", "manifest", "inspect", PUBLISHED_IMAGE], env=running.env(),
                       capture_output=True, check=True,
                       timeout=cluster_settings.CLUSTER_PULL_TIMEOUT_SECONDS)  # fmt: skip
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        if cluster_settings.CLUSTER_BUILD_OFFLINE is BuildOffline.NEVER:
            raise MissingToolError(f"{PUBLISHED_IMAGE} cannot be pulled") from None
        say("metrics-server's published image cannot be pulled: building it here")
        return False
    return True


def _wait_for_node_metrics(kubectl: list[str]) -> str:
    """`kubectl top nodes` once it answers (it fails until the first metrics are in)."""
    deadline = time.monotonic() + METRICS_TIMEOUT_SECONDS
    command = [*kubectl, "top", "nodes", "--no-headers"]
    while True:
        result = subprocess.run(command, capture_output=True, text=True,
                                timeout=COMMAND_TIMEOUT_SECONDS, check=False)  # fmt: skip
        if result.returncode == 0 and result.stdout.strip():
            return result.stdout.strip()
        if time.monotonic() > deadline:
            raise MissingToolError(f"kubectl top nodes did not answer: {result.stderr.strip()}")
        time.sleep(5)


def _tarball_path() -> Path:
    return IMAGES_DIR / gobuild.target(NAME).name / f"{NAME}.tar"


def _make_tarball(running: Engine, binary: Path, tarball: Path) -> None:
    say(f"Making the image {IMAGE}")
    command = ["docker", "import", "--change", f"USER {USER}:{USER}",
               "--change", f'ENTRYPOINT ["/{NAME}"]', "-", IMAGE]  # fmt: skip
    result = subprocess.run(command, input=dapr.static_image_layer(binary, NAME),
                            env=running.env(), capture_output=True,
                            timeout=SAVE_TIMEOUT_SECONDS, check=False)  # fmt: skip
    if result.returncode != 0:
        raise MissingToolError(f"docker import {IMAGE} failed: {result.stderr.decode()}")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(".partial")
    docker(running, "save", "-o", str(partial), IMAGE, timeout=SAVE_TIMEOUT_SECONDS)
    partial.rename(tarball)
    docker(running, "rmi", IMAGE)  # the tarball is the cache; the node keeps its copy


def _load(running: Engine, cluster_name: str, tarball: Path) -> bool:
    """Imports the image into the node's containerd unless it has it; whether it imported."""
    node = f"{cluster_name}-control-plane"
    present = docker(running, "exec", node, "ctr", "-n", "k8s.io", "images", "ls", "-q")
    if IMAGE in present.split():
        return False
    with tarball.open("rb") as stream:
        result = subprocess.run(
            ["docker", "exec", "-i", node, "ctr", "-n", "k8s.io", "images", "import",
             "--digests", "-"],
            stdin=stream, env=running.env(), capture_output=True, text=True,
            timeout=SAVE_TIMEOUT_SECONDS, check=False,
        )  # fmt: skip
    if result.returncode != 0:
        raise MissingToolError(f"importing {tarball.name} failed: {result.stderr}")
    return True


def _run(command: list[str], stdin: str | None = None, cwd: Path | None = None) -> str:
    result = subprocess.run(command, input=stdin, capture_output=True, text=True, cwd=cwd,
                            timeout=COMMAND_TIMEOUT_SECONDS, check=False)  # fmt: skip
    if result.returncode != 0:
        name = Path(command[0]).name
        raise MissingToolError(f"{name} {' '.join(command[1:3])} failed: {result.stderr.strip()}")
    return result.stdout
