"""What the images installed on the cluster (Dapr's control plane, metrics-server, the
NetworkPolicy agent) share: the check for a published image, else a Go build and its image
tarball (both cached) loaded into the node; a module's files from Go's module cache; and running
a command with a timeout."""

import json
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

from cluster import gobuild
from cluster.config import BuildOffline, cluster_settings
from cluster.docker import Engine, docker
from cluster.images import IMAGES_DIR
from cluster.steps import Stages
from devstack.binaries import MissingToolError
from devstack.processes import say

COMMAND_TIMEOUT_SECONDS = 300
DOWNLOAD_TIMEOUT_SECONDS = 600
LOAD_TIMEOUT_SECONDS = 600
# Makes the image tarball (second argument) of a binary (first argument).
MakeTarball = Callable[[Engine, Path, Path], None]


def image(
    running: Engine,
    stages: Stages,
    cluster_name: str,
    name: str,
    *,
    published: str,
    ours: str,
    make_tarball: MakeTarball,
) -> str:
    """`published` where it can be pulled; else `ours`, built (see `build`) and loaded into the
    node. Each a stage named after `name`."""
    with stages.stage(f"{name} published image") as facts:
        reachable = facts["reachable"] = pullable(running, published)
    if reachable:
        return published
    tarball = build(running, stages, name, make_tarball)
    with stages.stage(f"{name} image load") as facts:
        facts["loaded"] = bool(load(running, cluster_name, {ours: tarball}))
    return ours


def build(running: Engine, stages: Stages, name: str, make_tarball: MakeTarball) -> Path:
    """The binary of the Go build `name` and its image tarball (both cached)."""
    with stages.stage(f"go build {name}") as facts:
        facts["cached"] = gobuild.target(name).is_dir()
        binary = gobuild.binaries(name) / name
        facts["bytes"] = binary.stat().st_size
        facts["cold_build"] = gobuild.build_record(name)
    with stages.stage(f"{name} image") as facts:
        tarball = IMAGES_DIR / gobuild.target(name).name / f"{name}.tar"
        facts["cached"] = tarball.exists()
        if not tarball.exists():
            make_tarball(running, binary, tarball)
        facts["bytes"] = tarball.stat().st_size
    return tarball


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
                 cwd=gobuild.MODULES_DIR / build,
                 timeout_seconds=DOWNLOAD_TIMEOUT_SECONDS)  # fmt: skip
    return Path(json.loads(output)["Dir"])


def load(running: Engine, cluster_name: str, tarballs: Mapping[str, Path]) -> list[str]:
    """Imports into the node's containerd the images (reference: tarball) it lacks; returns
    those it imported."""
    node = f"{cluster_name}-control-plane"
    present = docker(running, "exec", node, "ctr", "-n", "k8s.io", "images", "ls", "-q").split()
    missing = [ref for ref in tarballs if ref not in present]
    for ref in missing:
        with tarballs[ref].open("rb") as stream:
            result = subprocess.run(
                ["docker", "exec", "-i", node, "ctr", "-n", "k8s.io", "images", "import",
                 "--digests", "-"],
                stdin=stream, env=running.env(), capture_output=True, text=True,
                timeout=LOAD_TIMEOUT_SECONDS, check=False,
            )  # fmt: skip
        if result.returncode != 0:
            raise MissingToolError(f"importing {tarballs[ref].name} failed: {result.stderr}")
    return missing


def save(running: Engine, image: str, tarball: Path) -> None:
    """`docker save`s `image` to `tarball` (the cache), then removes it from the engine."""
    tarball.parent.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(".partial")
    docker(running, "save", "-o", str(partial), image, timeout=LOAD_TIMEOUT_SECONDS)
    partial.rename(tarball)
    docker(running, "rmi", image)  # the tarball is the cache; the node keeps its copy


def run(
    command: list[str],
    stdin: str | None = None,
    cwd: Path | None = None,
    timeout_seconds: float = COMMAND_TIMEOUT_SECONDS,
) -> str:
    result = subprocess.run(command, input=stdin, capture_output=True, text=True, cwd=cwd,
                            timeout=timeout_seconds, check=False)  # fmt: skip
    if result.returncode != 0:
        name = Path(command[0]).name
        raise MissingToolError(f"{name} {' '.join(command[1:3])} failed: {result.stderr.strip()}")
    return result.stdout
