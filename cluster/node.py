"""The kind node image, made the way `kind build node-image` makes it but offline: a container
of the Debian node base gets kind's node files (from the kind module, at our pinned version),
our binaries and configuration; its containerd imports the images kubeadm needs; the container
is committed. The engine's image is the cache, tagged by everything that went in."""

import contextlib
import hashlib
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from cluster import base, gobuild, images
from cluster.docker import Engine, docker
from cluster.versions import KIND_VERSION, KUBERNETES_VERSION, PAUSE_IMAGE_TAG
from core.config import PROJECT_ROOT
from devstack.binaries import MissingToolError
from devstack.processes import say

NODE_FILES = PROJECT_ROOT / "cluster" / "node"
IMAGE_REPOSITORY = "order-service/kind-node"
BUILD_CONTAINER = "order-service-node-build"
COMMITTED = "order-service/kind-node-build:committed"
IMPORT_TIMEOUT_SECONDS = 600
CONTAINERD_READY_SECONDS = 60
CONTAINERD_CONFIG = "/etc/containerd/config.toml"
# As kind imports them: content only (no snapshots in the image), pinned against clean-up.
IMPORT_COMMAND = (
    "docker", "exec", "-i", "ctr", "--namespace=k8s.io", "images", "import",
    "--label=io.cri-containerd.pinned=pinned", "--no-unpack", "--digests", "-",
)  # fmt: skip


def node_image(engine: Engine) -> str:
    """The node image's tag, built unless the engine has it."""
    node_base, programs, tarballs, tag = _inputs(engine)
    if docker(engine, "images", "-q", tag).strip():
        return tag
    say(f"Building the node image {tag}")
    with _build_container(engine, node_base) as container:
        _copy_in(engine, container, programs)
        docker(engine, "exec", container, "/kind-setup.sh", timeout=IMPORT_TIMEOUT_SECONDS)
        docker(engine, "exec", container, "rm", "/kind-setup.sh")
        _write_cri_base_spec(engine, container)
        _import_images(engine, container, tarballs)
        docker(engine, "commit", container, COMMITTED, timeout=IMPORT_TIMEOUT_SECONDS)
    _finish(engine, tag)
    return tag


def _finish(engine: Engine, tag: str) -> None:
    """kind's node image settings on the committed container. A one-line build, not `commit
    --change`, because older engines (Debian's 20.10) refuse STOPSIGNAL there."""
    dockerfile = (
        f"FROM {COMMITTED}\n"
        'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]\n'
        "ENV container=docker\n"
        "STOPSIGNAL SIGRTMIN+3\n"  # systemd's "halt"
    )
    result = subprocess.run(
        ["docker", "build", "-q", "-t", tag, "-"],
        input=dockerfile,
        text=True,
        env={**engine.env(), "DOCKER_BUILDKIT": "0"},
        capture_output=True,
        timeout=IMPORT_TIMEOUT_SECONDS,
        check=False,
    )
    docker(engine, "rmi", COMMITTED)
    if result.returncode != 0:
        raise MissingToolError(f"finishing the node image failed: {result.stderr}")


def cached(engine: Engine) -> bool:
    return bool(docker(engine, "images", "-q", _inputs(engine)[3]).strip())


def _inputs(engine: Engine) -> tuple[str, list[Path], list[Path], str]:
    """What goes into the node image (each made on first use), and the tag naming them all."""
    node_base = base.debian_image(engine, "kind-node-base", base.NODE_PACKAGES)
    programs = [gobuild.binaries(name) for name in ("kubernetes", "containerd")]
    tarballs = images.image_tarballs(engine)
    key = hashlib.sha256(node_base.encode())
    for path in [*programs, *tarballs]:
        key.update(str(path.relative_to(gobuild.BIN_DIR.parent)).encode())
    for path in sorted(NODE_FILES.iterdir()):
        key.update(path.read_bytes())
    key.update(KIND_VERSION.encode())
    tag = f"{IMAGE_REPOSITORY}:{KUBERNETES_VERSION}-{key.hexdigest()[:12]}"
    return node_base, programs, tarballs, tag


@contextlib.contextmanager
def _build_container(engine: Engine, image: str) -> Iterator[str]:
    with contextlib.suppress(MissingToolError):
        docker(engine, "rm", "-f", BUILD_CONTAINER)
    docker(engine, "run", "-d", "--name", BUILD_CONTAINER, "--entrypoint", "sleep",
           "--security-opt", "seccomp=unconfined", "--network", "none",
           image, "infinity")  # fmt: skip
    try:
        yield BUILD_CONTAINER
    finally:
        docker(engine, "rm", "-f", "-v", BUILD_CONTAINER)


def _copy_in(engine: Engine, container: str, programs: list[Path]) -> None:
    """One tree, copied in one go: kind's node files, ours, and the binaries."""
    with tempfile.TemporaryDirectory(prefix="node-files-") as staging_dir:
        staging = Path(staging_dir)
        shutil.copytree(_kind_base_files(), staging, dirs_exist_ok=True)
        _place(staging / "usr/bin", programs[0], ("kubeadm", "kubelet", "kubectl"))
        _place(staging / "usr/local/bin", programs[1],
               ("containerd", "containerd-shim-runc-v2", "ctr"))  # fmt: skip
        for name in ("default-cni.yaml", "default-storage.yaml"):
            _copy(NODE_FILES / name, staging / "kind/manifests" / name, 0o644)
        _copy(NODE_FILES / "10-ptp.conflist", staging / "etc/cni/net.d/10-ptp.conflist", 0o644)
        _copy(NODE_FILES / "setup.sh", staging / "kind-setup.sh", 0o755)
        (staging / "kind/version").write_text(KUBERNETES_VERSION)
        config = staging / CONTAINERD_CONFIG.lstrip("/")
        config.write_text(_containerd_config(config.read_text()))
        _normalise_modes(staging)
        docker(engine, "cp", f"{staging}/.", f"{container}:/", timeout=IMPORT_TIMEOUT_SECONDS)


def _kind_base_files() -> Path:
    """images/base/files of the kind module at our version, from Go's module cache."""
    result = subprocess.run(
        ["go", "mod", "download", "-json", f"sigs.k8s.io/kind@{KIND_VERSION}"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise MissingToolError(f"go mod download sigs.k8s.io/kind failed: {result.stdout}")
    return Path(json.loads(result.stdout)["Dir"]) / "images" / "base" / "files"


def _place(directory: Path, source_dir: Path, names: tuple[str, ...]) -> None:
    for name in names:
        _copy(source_dir / name, directory / name, 0o755)


def _copy(source: Path, target: Path, mode: int) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    target.chmod(mode)


def _normalise_modes(staging: Path) -> None:
    """As kind's image: programs executable, everything else readable (the module cache's
    copies are read-only)."""
    for path in staging.rglob("*"):
        executable = path.is_dir() or "bin" in path.parent.parts or path.suffix == ".sh"
        path.chmod(0o755 if executable else 0o644)


def _containerd_config(kind_config: str) -> str:
    """kind's containerd configuration, with the pause image kubeadm expects, and pod
    sandboxes' OOM score adjustments kept within what the node may set (a node in a container
    cannot lower them below its own)."""
    replacements = {
        "sandbox_image": f'  sandbox_image = "registry.k8s.io/pause:{PAUSE_IMAGE_TAG}"',
        "restrict_oom_score_adj": "  restrict_oom_score_adj = true",
    }
    lines = []
    for line in kind_config.splitlines():
        setting = line.strip().split(" ", 1)[0]
        lines.append(replacements.get(setting, line))
    return "\n".join(lines) + "\n"


def _write_cri_base_spec(engine: Engine, container: str) -> None:
    """containerd's default spec with kind's product-files hook and without rlimits, as kind's
    base image has it (/etc/containerd/cri-base.json)."""
    spec = json.loads(docker(engine, "exec", container, "ctr", "oci", "spec"))
    hooks = spec.setdefault("hooks", {}).setdefault("createContainer", [])
    hooks.append({"path": "/kind/bin/mount-product-files.sh"})
    spec["process"].pop("rlimits", None)
    subprocess.run(
        ["docker", "exec", "-i", container, "cp", "/dev/stdin", "/etc/containerd/cri-base.json"],
        input=json.dumps(spec, indent=2),
        text=True,
        env=engine.env(),
        timeout=60,
        check=True,
    )


def _import_images(engine: Engine, container: str, tarballs: list[Path]) -> None:
    start = "containerd >/var/log/containerd-import.log 2>&1 & echo $! >/run/containerd-import.pid"
    docker(engine, "exec", container, "bash", "-c", start)
    deadline = time.monotonic() + CONTAINERD_READY_SECONDS
    while True:
        with contextlib.suppress(MissingToolError):
            docker(engine, "exec", container, "ctr", "version", timeout=10)
            break
        if time.monotonic() > deadline:
            raise MissingToolError("containerd in the node build container did not start")
        time.sleep(0.5)
    for tarball in tarballs:
        say(f"  importing {tarball.name} into the node's containerd")
        with tarball.open("rb") as stream:
            result = subprocess.run(
                [*IMPORT_COMMAND[:3], container, *IMPORT_COMMAND[3:]],
                stdin=stream,
                env=engine.env(),
                capture_output=True,
                text=True,
                timeout=IMPORT_TIMEOUT_SECONDS,
                check=False,
            )
        if result.returncode != 0:
            raise MissingToolError(f"importing {tarball.name} failed: {result.stderr}")
    docker(engine, "exec", container, "bash", "-c",
           # `sleep`, the container's first process, reaps no one: wait for a zombie.
           "pid=$(cat /run/containerd-import.pid); kill $pid; "
           "while [ -e /proc/$pid ] && ! grep -q '^State:.*Z' /proc/$pid/status; do "
           "sleep 0.2; done; "
           "rm /run/containerd-import.pid /var/log/containerd-import.log")  # fmt: skip
