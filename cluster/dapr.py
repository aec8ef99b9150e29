"""Dapr's control plane on the cluster: the Helm chart shipped in the `github.com/dapr/dapr`
module (`charts/dapr`, from Go's module cache), installed into `dapr-system` with mTLS on and
sidecars that pass the `restricted` Pod Security Standard.

Where Dapr's published images can be pulled, the chart uses them. Where they cannot, the
operator, sidecar injector, sentry, placement and daprd are built here (gobuild.BUILDS["dapr"])
and each becomes an image as Dapr's own Dockerfile makes it: the static binary at /<name>, CA
certificates, user 65532. The tarballs are cached beside the binaries and loaded into the node.
Dapr's scheduler is not installed when built here: its go-etcd-cron module is refused by the Go
module proxy; the service uses neither actors' reminders, workflows nor the jobs API."""

import io
import json
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

from cluster import gobuild
from cluster.config import BuildOffline, cluster_settings
from cluster.docker import Engine, docker
from cluster.images import IMAGES_DIR
from cluster.steps import Stages
from cluster.versions import DAPR_VERSION
from devstack import binaries
from devstack.binaries import CACHE_DIR, MissingToolError
from devstack.processes import say

NAMESPACE = "dapr-system"
RELEASE = "dapr"
# The published images: <registry>/<component>:<tag>, as the chart names them.
PUBLISHED_REGISTRY = "docker.io/daprio"
# Ours: a registry name nothing pulls from (the node has the images, pull policy IfNotPresent).
LOCAL_REGISTRY = "localhost/dapr"
# The chart's image names (values `image.name`) and the binary each runs.
COMPONENTS = ("operator", "injector", "sentry", "placement", "daprd")
CA_CERTIFICATES = Path("/etc/ssl/certs/ca-certificates.crt")
NONROOT = 65532  # as Dapr's images (distroless' nonroot user)
KUBECONFIG = CACHE_DIR / "cluster" / "kubeconfig"
INSTALL_TIMEOUT = "300s"
COMMAND_TIMEOUT_SECONDS = 420
SAVE_TIMEOUT_SECONDS = 600


def install(running: Engine, stages: Stages, cluster_name: str, kubectl: Path) -> None:
    """Images (published, or built here and loaded), then `helm upgrade --install` and a wait
    for every control-plane pod; each a stage of `stages`."""
    with stages.stage("dapr published images") as facts:
        published = facts["reachable"] = _published_reachable(running)
    registry = PUBLISHED_REGISTRY if published else LOCAL_REGISTRY
    if not published:
        tarballs = build(running, stages)
        with stages.stage("dapr images load") as facts:
            facts["loaded"] = _load(running, cluster_name, tarballs)
    with stages.stage("dapr install") as facts:
        facts["registry"] = registry
        facts["scheduler"] = published
        _helm_install(running, cluster_name, registry, scheduler=published)
        facts["pods"] = _wait_ready(kubectl)


def build(running: Engine, stages: Stages) -> list[Path]:
    """The binaries and the image tarballs (cached); `python -m cluster build` makes them too."""
    with stages.stage("go build dapr") as facts:
        facts["cached"] = gobuild.target("dapr").is_dir()
        programs = gobuild.programs(gobuild.binaries("dapr"))
        facts["bytes"] = {path.name: path.stat().st_size for path in programs}
        facts["cold_build"] = gobuild.build_record("dapr")
    with stages.stage("dapr images") as facts:
        facts["cached"] = all(_tarball_path(name).exists() for name in COMPONENTS)
        tarballs = [_tarball(running, name) for name in COMPONENTS]
        facts["bytes"] = {path.name: path.stat().st_size for path in tarballs}
    return tarballs


def image(name: str, registry: str = LOCAL_REGISTRY) -> str:
    return f"{registry}/{name}:{DAPR_VERSION.lstrip('v')}"


def chart_dir() -> Path:
    """charts/dapr of the Dapr module our build pins, downloaded into Go's module cache."""
    go = shutil.which("go")
    if go is None:
        raise MissingToolError("Go is needed to fetch Dapr's chart from its module")
    result = subprocess.run(
        [go, "mod", "download", "-json", f"github.com/dapr/dapr@{DAPR_VERSION}"],
        cwd=gobuild.MODULES_DIR / "dapr",
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise MissingToolError(f"go mod download github.com/dapr/dapr failed: {result.stdout}")
    return Path(json.loads(result.stdout)["Dir"]) / "charts" / "dapr"


def _published_reachable(running: Engine) -> bool:
    """Whether the node can pull Dapr's published images (it pulls through the engine's host
    network, so the engine answering a manifest request is the test)."""
    if cluster_settings.CLUSTER_BUILD_OFFLINE is BuildOffline.ALWAYS:
        return False
    try:
        subprocess.run(["docker", "manifest", "inspect", image("daprd", PUBLISHED_REGISTRY)],
                       env=running.env(), capture_output=True, check=True,
                       timeout=cluster_settings.CLUSTER_PULL_TIMEOUT_SECONDS)  # fmt: skip
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        if cluster_settings.CLUSTER_BUILD_OFFLINE is BuildOffline.NEVER:
            raise MissingToolError(
                f"{image('daprd', PUBLISHED_REGISTRY)} cannot be pulled (CLUSTER_BUILD_OFFLINE)"
            ) from None
        say("Dapr's published images cannot be pulled: building them here")
        return False
    return True


def _tarball_path(name: str) -> Path:
    return IMAGES_DIR / gobuild.target("dapr").name / f"{name}.tar"


def _tarball(running: Engine, name: str) -> Path:
    tarball = _tarball_path(name)
    if tarball.exists():
        return tarball
    tag = image(name)
    say(f"Making the image {tag}")
    binary = gobuild.binaries("dapr") / name
    command = ["docker", "import", "--change", f"USER {NONROOT}:{NONROOT}",
               "--change", f'ENTRYPOINT ["/{name}"]', "-", tag]  # fmt: skip
    result = subprocess.run(command, input=static_image_layer(binary, name), env=running.env(),
                            capture_output=True, timeout=SAVE_TIMEOUT_SECONDS,
                            check=False)  # fmt: skip
    if result.returncode != 0:
        raise MissingToolError(f"docker import {tag} failed: {result.stderr.decode()}")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(".partial")
    docker(running, "save", "-o", str(partial), tag, timeout=SAVE_TIMEOUT_SECONDS)
    partial.rename(tarball)
    docker(running, "rmi", tag)  # the tarball is the cache; the node keeps its copy
    return tarball


def static_image_layer(binary: Path, name: str) -> bytes:
    """The image's only layer: /<name>, /tmp, the host's CA bundle (as distroless/static has
    one) and a passwd entry for the user it runs as."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as archive:
        for directory, mode in (("tmp", 0o1777), ("etc", 0o755), ("etc/ssl", 0o755),
                                ("etc/ssl/certs", 0o755)):  # fmt: skip
            entry = tarfile.TarInfo(directory)
            entry.type, entry.mode = tarfile.DIRTYPE, mode
            archive.addfile(entry)
        _add_bytes(archive, "etc/passwd", f"nonroot:x:{NONROOT}:{NONROOT}::/home/nonroot:\n")
        if CA_CERTIFICATES.exists():
            archive.add(CA_CERTIFICATES, arcname="etc/ssl/certs/ca-certificates.crt")
        info = archive.gettarinfo(binary, arcname=name)
        info.uid = info.gid = 0
        info.mode = 0o755
        with binary.open("rb") as stream:
            archive.addfile(info, stream)
    return layer.getvalue()


def _add_bytes(archive: tarfile.TarFile, name: str, text: str) -> None:
    data = text.encode()
    entry = tarfile.TarInfo(name)
    entry.size, entry.mode = len(data), 0o644
    archive.addfile(entry, io.BytesIO(data))


def _load(running: Engine, cluster_name: str, tarballs: list[Path]) -> list[str]:
    """Imports into the node's containerd the images it lacks; returns those it imported."""
    node = f"{cluster_name}-control-plane"
    present = docker(running, "exec", node, "ctr", "-n", "k8s.io", "images", "ls", "-q")
    loaded = []
    for name, tarball in zip(COMPONENTS, tarballs, strict=True):
        if f"{image(name)}" in present.split():
            continue
        with tarball.open("rb") as stream:
            result = subprocess.run(
                ["docker", "exec", "-i", node, "ctr", "-n", "k8s.io", "images", "import",
                 "--digests", "-"],
                stdin=stream, env=running.env(), capture_output=True, text=True,
                timeout=SAVE_TIMEOUT_SECONDS, check=False,
            )  # fmt: skip
        if result.returncode != 0:
            raise MissingToolError(f"importing {tarball.name} failed: {result.stderr}")
        loaded.append(name)
    return loaded


def _helm_install(running: Engine, cluster_name: str, registry: str, *, scheduler: bool) -> None:
    settings = {
        "global.registry": registry,
        "global.tag": DAPR_VERSION.lstrip("v"),
        "global.imagePullPolicy": "IfNotPresent",
        "global.mtls.enabled": "true",
        "global.ha.enabled": "false",
        "global.scheduler.enabled": str(scheduler).lower(),
        "dapr_sidecar_injector.sidecarDropALLCapabilities": "true",
        "dapr_sidecar_injector.sidecarImagePullPolicy": "IfNotPresent",
        # The node has no volume provisioner: placement's Raft log and the scheduler's etcd
        # stay in memory (one replica each; a restart loses only in-flight state).
        "dapr_placement.cluster.forceInMemoryLog": "true",
        "dapr_scheduler.cluster.inMemoryStorage": "true",
    }
    values = [item for key, value in settings.items() for item in ("--set", f"{key}={value}")]
    _write_kubeconfig(running, cluster_name)
    say(f"Installing Dapr {DAPR_VERSION} into {NAMESPACE} from {registry}")
    run_tool([str(binaries.helm()), "upgrade", "--install", RELEASE, str(chart_dir()),
              "--namespace", NAMESPACE, "--create-namespace", "--wait", "--timeout",
              INSTALL_TIMEOUT, "--kubeconfig", str(KUBECONFIG), *values])  # fmt: skip


def _wait_ready(kubectl_path: Path) -> dict[str, str]:
    """Waits for every pod in dapr-system to be Ready; returns each pod's image."""
    kubectl = [str(kubectl_path), "--kubeconfig", str(KUBECONFIG), "-n", NAMESPACE]
    deadline = time.monotonic() + COMMAND_TIMEOUT_SECONDS
    while not run_tool([*kubectl, "get", "pods", "-o", "name"]).strip():
        if time.monotonic() > deadline:
            raise MissingToolError(f"no pods in {NAMESPACE}")
        time.sleep(1)
    run_tool([*kubectl, "wait", "--for=condition=Ready", "pod", "--all",
              f"--timeout={INSTALL_TIMEOUT}"])  # fmt: skip
    pods = json.loads(run_tool([*kubectl, "get", "pods", "-o", "json"]))["items"]
    return {pod["metadata"]["name"]: pod["spec"]["containers"][0]["image"] for pod in pods}


def _write_kubeconfig(running: Engine, cluster_name: str) -> None:
    """The cluster's kubeconfig in our cache, so helm and kubectl need no ~/.kube."""
    config = run_tool([str(binaries.kind()), "get", "kubeconfig", "--name", cluster_name],
                      env=running.env())  # fmt: skip
    KUBECONFIG.parent.mkdir(parents=True, exist_ok=True)
    KUBECONFIG.write_text(config)
    KUBECONFIG.chmod(0o600)


def run_tool(command: list[str], env: dict[str, str] | None = None) -> str:
    result = subprocess.run(command, capture_output=True, text=True, env=env,
                            timeout=COMMAND_TIMEOUT_SECONDS, check=False)  # fmt: skip
    if result.returncode != 0:
        name = Path(command[0]).name
        raise MissingToolError(f"{name} {' '.join(command[1:3])} failed: {result.stderr.strip()}")
    return result.stdout
