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
import subprocess
import tarfile
import time
from pathlib import Path

from cluster import addons, gobuild
from cluster.docker import Engine
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
        probe = image("daprd", PUBLISHED_REGISTRY)
        published = facts["reachable"] = addons.pullable(running, probe)
    registry = PUBLISHED_REGISTRY if published else LOCAL_REGISTRY
    if not published:
        tarballs = build(running, stages)
        with stages.stage("dapr images load") as facts:
            refs = [image(name) for name in COMPONENTS]
            loaded = addons.load(running, cluster_name, dict(zip(refs, tarballs, strict=True)))
            facts["loaded"] = [name for name, ref in zip(COMPONENTS, refs, strict=True)
                               if ref in loaded]  # fmt: skip
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
    return addons.module_dir("dapr", "github.com/dapr/dapr", DAPR_VERSION) / "charts" / "dapr"


def _tarball_path(name: str) -> Path:
    return IMAGES_DIR / gobuild.target("dapr").name / f"{name}.tar"


def _tarball(running: Engine, name: str) -> Path:
    tarball = _tarball_path(name)
    if not tarball.exists():
        make_static_image(running, gobuild.binaries("dapr") / name, image(name), tarball)
    return tarball


def make_static_image(
    running: Engine, binary: Path, tag: str, tarball: Path, user: int = NONROOT
) -> None:
    """`binary` as the one-layer image `tag` (static_image_layer), run as `user`, saved to
    `tarball`."""
    say(f"Making the image {tag}")
    command = ["docker", "import", "--change", f"USER {user}:{user}",
               "--change", f'ENTRYPOINT ["/{binary.name}"]', "-", tag]  # fmt: skip
    result = subprocess.run(command, input=static_image_layer(binary, binary.name),
                            env=running.env(), capture_output=True,
                            timeout=SAVE_TIMEOUT_SECONDS, check=False)  # fmt: skip
    if result.returncode != 0:
        raise MissingToolError(f"docker import {tag} failed: {result.stderr.decode()}")
    addons.save(running, tag, tarball)


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
