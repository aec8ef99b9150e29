"""The images kubeadm deploys (`kubeadm config images list`), made from our builds: each
control-plane component, etcd, CoreDNS and pause is one static binary in an otherwise empty
image; kube-proxy runs iptables and conntrack, so it gets a small Debian base. Each is saved
as a tarball (`docker save`) for the node image's containerd, cached beside the binaries."""

import io
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from cluster import base, gobuild
from cluster.docker import Engine, docker
from cluster.versions import KUBERNETES_VERSION
from devstack.binaries import MissingToolError
from devstack.processes import say

IMAGES_DIR = base.IMAGES_DIR
SAVE_TIMEOUT_SECONDS = 600
KUBE_PROXY_PACKAGES = ("iptables", "nftables", "conntrack", "kmod", "ipset")


@dataclass(frozen=True)
class Recipe:
    build: str  # the Go build (gobuild.BUILDS) holding the binary
    binary: str
    path: str  # where the binary goes in the image
    entrypoint: bool  # kubeadm's manifests give the component only arguments (CoreDNS, pause)


# By the image's last path element; kubeadm's static pods call the binary by name on PATH.
RECIPES = {
    "kube-apiserver": Recipe("kubernetes", "kube-apiserver", "/usr/local/bin", False),
    "kube-controller-manager": Recipe(
        "kubernetes", "kube-controller-manager", "/usr/local/bin", False
    ),
    "kube-scheduler": Recipe("kubernetes", "kube-scheduler", "/usr/local/bin", False),
    "kube-proxy": Recipe("kubernetes", "kube-proxy", "/usr/local/bin", False),
    "etcd": Recipe("etcd", "etcd", "/usr/local/bin", False),
    "coredns": Recipe("coredns", "coredns", "", True),
    "pause": Recipe("pause", "pause", "", True),
}


def required_images() -> list[str]:
    """What kubeadm of our build deploys, e.g. registry.k8s.io/etcd:3.7.0-0."""
    kubeadm = gobuild.binaries("kubernetes") / "kubeadm"
    result = subprocess.run(
        [str(kubeadm), "config", "images", "list", "--kubernetes-version", KUBERNETES_VERSION],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise MissingToolError(f"kubeadm config images list failed: {result.stderr}")
    return result.stdout.split()


def image_tarballs(engine: Engine) -> list[Path]:
    """A `docker save` tarball for each image kubeadm needs, made on first use."""
    return [_tarball(engine, image) for image in required_images()]


def cached() -> bool:
    """Whether every image kubeadm needs has its tarball already."""
    return all(_tarball_path(image).exists() for image in required_images())


def _recipe(image: str) -> tuple[str, Recipe]:
    name = image.rsplit("/", 1)[1].split(":", 1)[0]
    recipe = RECIPES.get(name)
    if recipe is None:
        raise MissingToolError(f"kubeadm needs {image}, which cluster/images.py cannot make")
    return name, recipe


def _tarball_path(image: str) -> Path:
    name, recipe = _recipe(image)
    extra = "-debian" if name == "kube-proxy" else ""
    return IMAGES_DIR / gobuild.binaries(recipe.build).name / f"{name}{extra}.tar"


def _tarball(engine: Engine, image: str) -> Path:
    name, recipe = _recipe(image)
    binary = gobuild.binaries(recipe.build) / recipe.binary
    tarball = _tarball_path(image)
    if tarball.exists():
        return tarball
    say(f"Making the image {image}")
    if name == "kube-proxy":
        _on_debian(engine, image, binary, recipe)
    else:
        _single_binary(engine, image, binary, recipe)
    tarball.parent.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(".partial")
    docker(engine, "save", "-o", str(partial), image, timeout=SAVE_TIMEOUT_SECONDS)
    partial.rename(tarball)
    docker(engine, "rmi", image)  # the tarball is the cache; the node image carries it
    return tarball


def _single_binary(engine: Engine, image: str, binary: Path, recipe: Recipe) -> None:
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as archive:
        for directory in ("tmp", "usr", "usr/local", "usr/local/bin"):
            entry = tarfile.TarInfo(directory)
            entry.type = tarfile.DIRTYPE
            entry.mode = 0o1777 if directory == "tmp" else 0o755
            archive.addfile(entry)
        archive.add(binary, arcname=f"{recipe.path}/{recipe.binary}".lstrip("/"))
    changes = ["ENV PATH=/usr/local/bin:/usr/bin:/bin"]
    if recipe.entrypoint:
        changes.append(f'ENTRYPOINT ["{recipe.path}/{recipe.binary}"]')
    command = ["docker", "import"]
    for change in changes:
        command += ["--change", change]
    result = subprocess.run(
        [*command, "-", image],
        input=layer.getvalue(),
        env=engine.env(),
        capture_output=True,
        timeout=SAVE_TIMEOUT_SECONDS,
        check=False,
    )
    if result.returncode != 0:
        raise MissingToolError(f"docker import {image} failed: {result.stderr.decode()}")


def _on_debian(engine: Engine, image: str, binary: Path, recipe: Recipe) -> None:
    debian = base.debian_image(engine, "kube-proxy-base", KUBE_PROXY_PACKAGES)
    container = docker(engine, "create", debian).strip()
    try:
        docker(engine, "cp", str(binary), f"{container}:{recipe.path}/{recipe.binary}")
        docker(engine, "commit", "--change", 'CMD ["/usr/local/bin/kube-proxy"]', container, image)
    finally:
        docker(engine, "rm", "-f", container)
