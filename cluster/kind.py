"""`up` and `down`: the kind cluster on an engine that can run it, from kind's published node
image where it can be pulled, else from the node image built here."""

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from cluster import (
    app_images,
    base,
    dapr,
    gobuild,
    images,
    metrics_server,
    network_policy,
    node,
    release,
    store_images,
)
from cluster.config import BuildOffline, cluster_settings
from cluster.docker import Engine, docker, engine, our_host, stop_ours
from cluster.steps import APP_IMAGES, CLUSTER_CREATE, RESULTS, Stages
from cluster.versions import KIND_NODE_IMAGE
from devstack import binaries
from devstack.binaries import MissingToolError
from devstack.processes import say

KIND_CONFIG = Path(__file__).with_name("node") / "kind-config.yaml"
CREATE_TIMEOUT_SECONDS = 900
READY_TIMEOUT = "300s"
# The pods' addresses: node/kind-config.yaml's podSubnet, node/10-ptp.conflist's range.
POD_SUBNET = "10.244.0.0/16"
# The Services' addresses: kind's default (node/kind-config.yaml sets none).
SERVICE_SUBNET = "10.96.0.0/16"
# The node's routing table (and rule preference) for forwarded traffic to Service addresses.
UNROUTED_TABLE = 101
PULL_TIMEOUT_SECONDS = 1800
# How long a found node's API server has to answer before the cluster is recreated.
NODE_RESTART_SECONDS = 120
# kind's name for the container of a one-node cluster's node.
NODE_CONTAINER = f"{cluster_settings.CLUSTER_NAME}-control-plane"


def up() -> Engine:
    """Brings the cluster up (or finds it up), waits until its node and DNS are Ready, then
    installs Dapr's control plane, metrics-server, the NetworkPolicy agent and the chart and
    waits for both apps."""
    stages = Stages("up")
    with stages.stage("engine") as facts:
        running = engine()
        facts["ours"] = running.ours
    image = _node_image(running, stages)
    name = cluster_settings.CLUSTER_NAME
    with stages.stage(CLUSTER_CREATE) as facts:
        found = name in _clusters(running)
        if found and _api_server_answers(running):
            facts["already_up"] = True
            say(f"kind cluster {name} is already up")
        else:
            if found:
                facts["recreated"] = True
                say(f"kind cluster {name} exists but its API server does not answer: recreating it")
                _kind(running, "delete", "cluster", "--name", name)
            _kind(running, "create", "cluster", "--name", name, "--image", image,
                  "--config", str(KIND_CONFIG), "--wait", "5m")  # fmt: skip
    with stages.stage("ready"):
        _unrouted_addresses_unreachable(running)
        node_kubectl(running, "wait", "--for=condition=Ready", "node", "--all",
                     f"--timeout={READY_TIMEOUT}")  # fmt: skip
        node_kubectl(running, "-n", "kube-system", "rollout", "status", "deployment/coredns",
                     f"--timeout={READY_TIMEOUT}")  # fmt: skip
    dapr.install(running, stages, name, kubectl())
    metrics_server.install(running, stages, name, kubectl())
    # Before the release, so that its NetworkPolicies hold from its first pod on.
    network_policy.install(running, stages, name, kubectl())
    build_offline = image != KIND_NODE_IMAGE
    built = app_images.stages(running, stages, build_offline, name)
    # The development profile's Redis and PostgreSQL, where their official images cannot be had.
    stores = store_images.stages(running, stages, build_offline, name)
    store_refs = stores.all if stores else []
    release.install(stages, kubectl(), built, stores)
    sizes = {**_image_sizes(running, image), **app_images.sizes(running, built)}
    sizes |= app_images.image_sizes(running, store_refs)
    results = stages.write(node_image=image, app_images=built.all, store_images=store_refs,
                           image_bytes=sizes)  # fmt: skip
    say(f"Cluster {name} is ready (kubectl context kind-{name}; timings: {results})")
    if running.ours:
        say(f"Docker clients reach it with DOCKER_HOST={our_host()}")
    return running


def is_up() -> bool:
    """Whether the cluster runs on the running engine or on ours."""
    return any(cluster_settings.CLUSTER_NAME in clusters for clusters in _clusters_anywhere())


def _clusters_anywhere() -> Iterator[list[str]]:
    for candidate in (Engine(host=None, ours=False), Engine(host=our_host(), ours=True)):
        try:
            yield _clusters(candidate)
        except (MissingToolError, subprocess.TimeoutExpired):
            continue


def down() -> None:
    """Deletes the cluster and stops the project's dockerd if it runs."""
    for candidate in (Engine(host=None, ours=False), Engine(host=our_host(), ours=True)):
        try:
            clusters = _clusters(candidate)
        except (MissingToolError, subprocess.TimeoutExpired):
            continue
        if cluster_settings.CLUSTER_NAME in clusters:
            _kind(candidate, "delete", "cluster", "--name", cluster_settings.CLUSTER_NAME)
    if not stop_ours():
        say("The project's dockerd was not running")


def build() -> Engine:
    """Builds (or finds cached) the node image and everything on it, and the images of Dapr
    and the add-ons, without a cluster."""
    stages = Stages("build")
    with stages.stage("engine"):
        running = engine()
    image = _build_node_image(running, stages)
    dapr.build(running, stages)
    metrics_server.build(running, stages)
    network_policy.build(running, stages)
    stages.write(node_image=image, image_bytes=_image_sizes(running, image))
    return running


def app_images_only() -> Engine:
    """Builds (or finds) the app images; loads them into the cluster if it is up."""
    stages = Stages("images", results=RESULTS.with_name("images.json"))
    with stages.stage("engine"):
        running = engine()
    build_offline = app_images.offline(running)
    name = cluster_settings.CLUSTER_NAME
    if name in _clusters(running):
        built = app_images.stages(running, stages, build_offline, name)
        stores = store_images.stages(running, stages, build_offline, name)
    else:
        with stages.stage(APP_IMAGES) as facts:
            facts["cached"] = app_images.cached(running, build_offline)
            built = app_images.build(running, build_offline)
        stores = None
        if build_offline:
            with stages.stage("store images") as facts:
                facts["cached"] = store_images.cached(running)
                stores = store_images.build(running)
        say(f"kind cluster {name} is not up: the images are built, not loaded")
    store_refs = stores.all if stores else []
    sizes = {**app_images.sizes(running, built), **app_images.image_sizes(running, store_refs)}
    stages.write(app_images=built.all, store_images=store_refs, image_bytes=sizes)
    return running


def _unrouted_addresses_unreachable(running: Engine) -> None:
    """Packets from pods to a pod or Service address with nothing behind it are refused on the
    node (ICMP host unreachable) instead of following its default route out of the cluster.
    Pod addresses: after a pod is deleted, kube-proxy's rules and peers' connections still point
    at its address for a moment, and the ptp plugin leaves only per-pod routes (each more
    specific than the subnet's). Service addresses: kube-proxy rejects connections to a Service
    without endpoints in the filter table's FORWARD chain, but a NetworkPolicy agent that
    accepts pod traffic earlier in that chain (kube-router does) lets them through, not
    rewritten; a rule sends forwarded traffic to the Service range to a table where it is
    unreachable, while the node's own connections to Services (the API server calling a
    webhook) keep the main table. Routes and rules do not survive a restart of the node, so
    `up` sets them every time."""
    script = (
        f"ip route replace unreachable {POD_SUBNET}"
        f" && ip route replace unreachable {SERVICE_SUBNET} table {UNROUTED_TABLE}"
        f" && while ip rule del pref {UNROUTED_TABLE - 1} 2>/dev/null; do :; done"
        f" && while ip rule del pref {UNROUTED_TABLE} 2>/dev/null; do :; done"
        f" && ip rule add pref {UNROUTED_TABLE - 1} iif lo lookup main"
        f" && ip rule add pref {UNROUTED_TABLE} to {SERVICE_SUBNET} lookup {UNROUTED_TABLE}"
    )
    docker(running, "exec", NODE_CONTAINER, "sh", "-c", script)


def _api_server_answers(running: Engine) -> bool:
    """Whether a found cluster's API server answers, its node started first if it is stopped.
    A node whose engine stopped under it (a killed dockerd, a reboot) comes back with the
    engine's restart policy, or not at all; its API server then needs a while, or never
    answers, and such a leftover is recreated rather than trusted."""
    try:
        if docker(running, "inspect", "--format", "{{.State.Running}}", NODE_CONTAINER) != "true\n":
            docker(running, "start", NODE_CONTAINER)
    except MissingToolError:
        return False
    deadline = time.monotonic() + NODE_RESTART_SECONDS
    while time.monotonic() < deadline:
        try:
            node_kubectl(running, "get", "--raw", "/readyz", "--request-timeout=5s")
            return True
        except MissingToolError:
            time.sleep(2)
    return False


def node_kubectl(running: Engine, *args: str) -> str:
    """kubectl inside the control-plane node: no kubectl needed on the host."""
    return docker(running, "exec", NODE_CONTAINER, "kubectl",
                  "--kubeconfig=/etc/kubernetes/admin.conf", *args, timeout=360)  # fmt: skip


def kubectl() -> Path:
    """kubectl for the host: on PATH, else the one built with the node's binaries."""
    on_path = shutil.which("kubectl")
    return Path(on_path) if on_path else gobuild.binaries("kubernetes") / "kubectl"


def _node_image(running: Engine, stages: Stages) -> str:
    mode = cluster_settings.CLUSTER_BUILD_OFFLINE
    if mode is not BuildOffline.ALWAYS:
        with stages.stage("pull published node image") as facts:
            pulled = _pull(running, KIND_NODE_IMAGE)
            facts["pulled"] = pulled
        if pulled:
            return KIND_NODE_IMAGE
        if mode is BuildOffline.NEVER:
            raise MissingToolError(f"{KIND_NODE_IMAGE} cannot be pulled (CLUSTER_BUILD_OFFLINE)")
        say("The published node image cannot be pulled: building it here")
    return _build_node_image(running, stages)


def _build_node_image(running: Engine, stages: Stages) -> str:
    """Each part in its own stage, so the results show what the cold build costs."""
    with stages.stage("base image") as facts:
        facts["cached"] = base.cached(running, "kind-node-base", base.NODE_PACKAGES)
        base.debian_image(running, "kind-node-base", base.NODE_PACKAGES)
        facts["cold_build"] = base.build_record("kind-node-base", base.NODE_PACKAGES)
    for name in (name for name, build in gobuild.BUILDS.items() if build.node):
        with stages.stage(f"go build {name}") as facts:
            facts["cached"] = gobuild.target(name).is_dir()
            programs = gobuild.programs(gobuild.binaries(name))
            facts["bytes"] = sum(path.stat().st_size for path in programs)
            facts["cold_build"] = gobuild.build_record(name)
    with stages.stage("images") as facts:
        facts["cached"] = images.cached()
        tarballs = images.image_tarballs(running)
        facts["bytes"] = {path.name: path.stat().st_size for path in tarballs}
    with stages.stage("node image") as facts:
        facts["cached"] = node.cached(running)
        return node.node_image(running)


def _pull(running: Engine, image: str) -> bool:
    if docker(running, "images", "-q", image.split("@", maxsplit=1)[0]).strip():
        return True
    say(f"Trying to pull {image} (CLUSTER_PULL_TIMEOUT_SECONDS for the registry to answer)")
    try:
        # The registry answering a manifest request shows a pull can work at all.
        subprocess.run(["docker", "manifest", "inspect", image.split("@", maxsplit=1)[0]],
                       env=running.env(), capture_output=True, check=True,
                       timeout=cluster_settings.CLUSTER_PULL_TIMEOUT_SECONDS)  # fmt: skip
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return False
    docker(running, "pull", image, timeout=PULL_TIMEOUT_SECONDS)
    return True


def _clusters(running: Engine) -> list[str]:
    return _kind(running, "get", "clusters", quiet=True).split()


def _kind(running: Engine, *args: str, quiet: bool = False) -> str:
    result = subprocess.run(
        [str(binaries.kind()), *args],
        env=running.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if quiet else None,  # kind's progress goes to stderr
        text=True,
        timeout=CREATE_TIMEOUT_SECONDS,
        check=False,
    )
    if result.returncode != 0:
        raise MissingToolError(f"kind {' '.join(args)} failed (exit {result.returncode})")
    return result.stdout or ""


def _image_sizes(running: Engine, image: str) -> dict[str, int]:
    output = docker(running, "image", "inspect", "--format", "{{json .Size}}", image)
    return {image: json.loads(output)}
