"""What the add-ons installed after `up` (metrics-server, the NetworkPolicy agent) share: the
check for a published image, a module's files from Go's module cache, loading an image tarball
into the node, and running a command with a timeout."""

import json
import shutil
import subprocess
from pathlib import Path

from cluster import gobuild
from cluster.config import BuildOffline, cluster_settings
from cluster.docker import Engine, docker
from devstack.binaries import MissingToolError
from devstack.processes import say

COMMAND_TIMEOUT_SECONDS = 300
LOAD_TIMEOUT_SECONDS = 600


def pullable(running: Engine, image: str) -> bool:
    """Whether the node can pull `image` (it pulls through the engine's host network, so the
    engine answering a manifest request is the test); CLUSTER_BUILD_OFFLINE decides first."""
    if cluster_settings.CLUSTER_BUILD_OFFLINE is BuildOffline.ALWAYS:
        return False
    try:
        subprocess.run(["docker", "manifest", "inspect", image], env=running.env(),
                       capture_output=True, check=True,
                       timeout=cluster_settings.CLUSTER_PULL_TIMEOUT_SECONDS)  # fmt: skip
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        if cluster_settings.CLUSTER_BUILD_OFFLINE is BuildOffline.NEVER:
            raise MissingToolError(f"{image} cannot be pulled (CLUSTER_BUILD_OFFLINE)") from None
        say(f"{image} cannot be pulled: building it here")
        return False
    return True


def module_dir(build: str, module: str, version: str) -> Path:
    """`module`@`version`, as the Go build `build` (cluster/go/<build>) pins it, in Go's
    module cache."""
    go = shutil.which("go")
    if go is None:
        raise MissingToolError(f"Go is needed to fetch {module}'s manifests from its module")
    output = run([go, "mod", "download", "-json", f"{module}@{version}"],
                 cwd=gobuild.MODULES_DIR / build)  # fmt: skip
    return Path(json.loads(output)["Dir"])


def load(running: Engine, cluster_name: str, image: str, tarball: Path) -> bool:
    """Imports `tarball` into the node's containerd unless it has `image`; whether it did."""
    node = f"{cluster_name}-control-plane"
    present = docker(running, "exec", node, "ctr", "-n", "k8s.io", "images", "ls", "-q")
    if image in present.split():
        return False
    with tarball.open("rb") as stream:
        result = subprocess.run(
            ["docker", "exec", "-i", node, "ctr", "-n", "k8s.io", "images", "import",
             "--digests", "-"],
            stdin=stream, env=running.env(), capture_output=True, text=True,
            timeout=LOAD_TIMEOUT_SECONDS, check=False,
        )  # fmt: skip
    if result.returncode != 0:
        raise MissingToolError(f"importing {tarball.name} failed: {result.stderr}")
    return True


def save(running: Engine, image: str, tarball: Path) -> None:
    """`docker save`s `image` to `tarball` (the cache), then removes it from the engine."""
    tarball.parent.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(".partial")
    docker(running, "save", "-o", str(partial), image, timeout=LOAD_TIMEOUT_SECONDS)
    partial.rename(tarball)
    docker(running, "rmi", image)  # the tarball is the cache; the node keeps its copy


def run(command: list[str], stdin: str | None = None, cwd: Path | None = None) -> str:
    result = subprocess.run(command, input=stdin, capture_output=True, text=True, cwd=cwd,
                            timeout=COMMAND_TIMEOUT_SECONDS, check=False)  # fmt: skip
    if result.returncode != 0:
        name = Path(command[0]).name
        raise MissingToolError(f"{name} {' '.join(command[1:3])} failed: {result.stderr.strip()}")
    return result.stdout
