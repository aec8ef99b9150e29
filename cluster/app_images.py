"""The two app images (the project's Dockerfile, targets `api` and `placer`) built on the
cluster's engine and loaded into the kind node, tagged with a hash of what goes into them, so
an unchanged tree is not rebuilt.

Where Docker Hub answers they build as anywhere (`python:3.11-slim`, dependencies from PyPI).
Where it does not, they build on a Debian bookworm base made like the node's (cluster/base.py)
with the locked wheels downloaded here, outside the build, so the build needs no network."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker

from cluster import addons, base
from cluster.config import BuildOffline, cluster_settings
from cluster.docker import Engine, docker
from cluster.steps import APP_IMAGES, Stages, run_logged
from core.config import PROJECT_ROOT
from devstack import binaries
from devstack.binaries import CACHE_DIR, MissingToolError
from devstack.processes import say

REPOSITORY = "order-service"  # the chart's image.repository: <repository>/order-<app>:<tag>
APPS = ("api", "placer")
# What the Dockerfile's COPY lines take, besides the wheels.
INPUTS = ("Dockerfile", ".dockerignore", "pyproject.toml", "uv.lock")
PACKAGES = ("core", "app", "placer", "exchange")
PYTHON_PACKAGES = ("python3", "ca-certificates")  # the base: Debian's Python 3.11, minbase
PYTHON_FULL_VERSION = "3.11.2"  # bookworm's python3
PYTHON_VERSION = PYTHON_FULL_VERSION.rpartition(".")[0]
# The markers of the image's Python, for the requirements whose markers hold there and not on
# the Python that downloads them (redis needs async-timeout below 3.11.3, say).
IMAGE_MARKER_ENVIRONMENT = {
    "python_version": PYTHON_VERSION, "python_full_version": PYTHON_FULL_VERSION,
    "implementation_name": "cpython", "platform_python_implementation": "CPython",
    "os_name": "posix", "sys_platform": "linux", "platform_system": "Linux",
    "platform_machine": "x86_64",
}  # fmt: skip
# Wheels that run on bookworm's glibc (2.36): pip takes exactly the tags it is given.
PLATFORMS = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(36, 4, -1)),
    "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64",
)  # fmt: skip
PIP_VERSION = "26.3"  # runs from its wheel in the build, to install the others
WHEELS_DIR = CACHE_DIR / "cluster" / "wheels"
RECORDS_DIR = CACHE_DIR / "cluster" / "images"
TMP_DIR = CACHE_DIR / "cluster" / "tmp"
BUILD_TIMEOUT_SECONDS = 1200
DOWNLOAD_TIMEOUT_SECONDS = 600
LOAD_TIMEOUT_SECONDS = 600
PROBE_IMAGE = "python:3.11-slim"


@dataclass(frozen=True)
class AppImages:
    tag: str

    def image(self, app: str) -> str:
        return f"{REPOSITORY}/order-{app}:{self.tag}"

    @property
    def all(self) -> list[str]:
        return [self.image(app) for app in APPS]

    def helm_values(self) -> dict[str, str]:
        """What the chart needs to run these images (`--set key=value` each)."""
        return {"image.repository": REPOSITORY, "image.tag": self.tag}


def stages(engine: Engine, stages: Stages, build_offline: bool, cluster: str) -> AppImages:
    """Builds (or finds) both images and loads them into the node, each a timed stage."""
    with stages.stage(APP_IMAGES) as facts:
        facts["cached"] = cached(engine, build_offline)
        images = build(engine, build_offline)
        facts["tag"] = images.tag
        facts["bytes"] = sizes(engine, images)
        facts["cold_build"] = build_record(images)
        if build_offline:
            facts["base_cold_build"] = base.build_record("python-base", PYTHON_PACKAGES)
    with stages.stage("app images load"):
        load(engine, images, cluster)
    say(
        f"App images loaded: {', '.join(images.all)}; the chart's values: "
        + " ".join(f"--set {key}={value}" for key, value in images.helm_values().items())
    )
    return images


def offline(engine: Engine) -> bool:
    """Whether to build without a registry: CLUSTER_BUILD_OFFLINE, or (auto) when the
    official Python image's registry does not answer."""
    mode = cluster_settings.CLUSTER_BUILD_OFFLINE
    if mode is not BuildOffline.AUTO:
        return mode is BuildOffline.ALWAYS
    if docker(engine, "images", "-q", PROBE_IMAGE).strip():
        return False
    return not addons.pullable(engine, PROBE_IMAGE)


def cached(engine: Engine, build_offline: bool) -> bool:
    """Whether the engine has both images of the current tree."""
    images = AppImages(_key(_base_image_name(build_offline)))
    return all(docker(engine, "images", "-q", image).strip() for image in images.all)


def build(engine: Engine, build_offline: bool) -> AppImages:
    """Both images of the current tree, built unless the engine has them."""
    base_image = base.debian_image(engine, "python-base", PYTHON_PACKAGES) if build_offline else ""
    images = AppImages(_key(_base_image_name(build_offline)))
    if all(docker(engine, "images", "-q", image).strip() for image in images.all):
        return images
    started = time.monotonic()
    wheels = _wheels() if build_offline else None
    context = _context(wheels)
    try:
        for app in APPS:
            say(f"Building {images.image(app)}")
            command = ["nice", "-n", "19", "docker", "build", "--force-rm", "--target", app]
            command += ["--tag", images.image(app)]
            if build_offline:
                command += ["--build-arg", f"BASE_IMAGE={base_image}"]
                command += ["--build-arg", "DEPENDENCIES=wheels"]
            run_logged([*command, str(context)], what=f"docker build {app}",
                       log_name=f"docker-build-{app}", timeout_seconds=BUILD_TIMEOUT_SECONDS,
                       env=engine.env())  # fmt: skip
    finally:
        shutil.rmtree(context, ignore_errors=True)
    record: dict[str, object] = {"seconds": round(time.monotonic() - started, 1)}
    if wheels is not None:
        record["wheels"] = json.loads(wheels.with_suffix(".json").read_text())
    _record(images.tag, record)
    _remove_older(engine, images)
    return images


def build_record(images: AppImages) -> dict[str, object]:
    """What building these images took ({} if not recorded)."""
    path = RECORDS_DIR / f"app-images-{images.tag}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def sizes(engine: Engine, images: AppImages) -> dict[str, int]:
    return image_sizes(engine, images.all)


def image_sizes(engine: Engine, references: Sequence[str]) -> dict[str, int]:
    return {
        image: json.loads(docker(engine, "image", "inspect", "--format", "{{json .Size}}", image))
        for image in references
    }


def load(engine: Engine, images: AppImages, cluster: str) -> None:
    load_images(engine, images.all, cluster)


def load_images(engine: Engine, references: Sequence[str], cluster: str) -> None:
    """Loads into the kind node (one node: cluster/node/kind-config.yaml) what it lacks."""
    node = f"{cluster}-control-plane"
    listed = docker(engine, "exec", node, "ctr", "--namespace=k8s.io", "images", "list", "-q")
    missing = [image for image in references if f"docker.io/{image}" not in listed.split()]
    if not missing:
        return
    result = subprocess.run(
        [str(binaries.kind()), "load", "docker-image", "--name", cluster, *missing],
        env=engine.env(),
        capture_output=True,
        text=True,
        timeout=LOAD_TIMEOUT_SECONDS,
        check=False,
    )
    if result.returncode != 0:
        raise MissingToolError(f"kind load docker-image failed: {result.stderr.strip()}")


def _base_image_name(build_offline: bool) -> str:
    """Names the base for the key without building it (its tag is keyed by its packages)."""
    return base.image_tag("python-base", PYTHON_PACKAGES) if build_offline else "default"


def _sources() -> list[Path]:
    files = [PROJECT_ROOT / name for name in INPUTS]
    for package in PACKAGES:
        files += sorted(
            path
            for path in (PROJECT_ROOT / package).rglob("*")
            if path.is_file() and "__pycache__" not in path.parts
        )
    return files


def _key(base_image: str) -> str:
    """A hash of the base, the pip used offline and every file the build copies."""
    digest = hashlib.sha256(f"{base_image} {PIP_VERSION}\n".encode())
    for path in _sources():
        digest.update(f"{path.relative_to(PROJECT_ROOT)}\n".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:12]


def _context(wheels: Path | None) -> Path:
    """A build context with what the Dockerfile copies (and the wheels, offline)."""
    TMP_DIR.mkdir(parents=True, exist_ok=True)
    context = Path(tempfile.mkdtemp(prefix="app-images-", dir=TMP_DIR))
    for path in _sources():
        target = context / path.relative_to(PROJECT_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    if wheels is not None:
        (context / "wheels").mkdir()
        for path in wheels.iterdir():
            os.link(path, context / "wheels" / path.name)
    return context


def _wheels() -> Path:
    """The locked runtime dependencies as wheels for the image's platform, with the exported
    requirements (hashes included) and pip's wheel: cached by uv.lock."""
    lock = (PROJECT_ROOT / "uv.lock").read_bytes()
    inputs = f"{PLATFORMS} {IMAGE_MARKER_ENVIRONMENT} {PIP_VERSION}"
    key = hashlib.sha256(lock + inputs.encode())
    target = WHEELS_DIR / key.hexdigest()[:12]
    if target.is_dir():
        return target
    started = time.monotonic()
    say("Downloading the locked wheels for the app images (first time for this uv.lock)")
    TMP_DIR.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix="wheels-", dir=TMP_DIR))
    try:
        _download(partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    WHEELS_DIR.mkdir(parents=True, exist_ok=True)
    partial.rename(target)
    record = {"seconds": round(time.monotonic() - started, 1), "files": len(list(target.iterdir()))}
    target.with_suffix(".json").write_text(json.dumps(record))
    say(f"Wheels: {target} ({record['files']} files in {record['seconds']} s)")
    return target


def _download(directory: Path) -> None:
    """uv exports the runtime requirements with their hashes; pip downloads their wheels."""
    requirements = directory / "requirements.txt"
    uv = [_python(), "-m", "uv"]
    run_logged([*uv, "export", "--frozen", "--no-dev", "--no-emit-project", "--quiet",
                "--output-file", str(requirements)], what="uv export", log_name="uv-export",
               timeout_seconds=60, cwd=PROJECT_ROOT)  # fmt: skip
    # pip evaluates markers on the Python it runs on, whatever --python-version says: it gets
    # the requirements with the image's markers already evaluated.
    for_download = directory / "requirements-image.txt"
    for_download.write_text(for_image(requirements.read_text()))
    pip = [*uv, "tool", "run", "--from", f"pip=={PIP_VERSION}", "pip"]
    download = [*pip, "download", "--quiet", "--disable-pip-version-check"]
    download += ["--only-binary=:all:", "--python-version", PYTHON_VERSION, "--implementation"]
    download += ["cp", "--dest", str(directory)]
    for platform in PLATFORMS:
        download += ["--platform", platform]
    run_logged([*download, "--require-hashes", "--requirement", str(for_download)],
               what="pip download", log_name="pip-download-wheels",
               timeout_seconds=DOWNLOAD_TIMEOUT_SECONDS)  # fmt: skip
    run_logged([*download, f"pip=={PIP_VERSION}"], what="pip download pip",
               log_name="pip-download-pip", timeout_seconds=DOWNLOAD_TIMEOUT_SECONDS)  # fmt: skip


def for_image(requirements: str) -> str:
    """Exported requirements (each a line, then its indented hashes) without the ones whose
    marker does not hold on the image's Python, and without markers."""
    kept: list[str] = []
    keeping = True
    for line in requirements.splitlines():
        if line[:1] in (" ", "\t"):  # a requirement's --hash or "# via" line
            if keeping:
                kept.append(line)
            continue
        requirement, _, marker = line.partition(" ; ")
        keeping = not marker or Marker(marker.removesuffix("\\").strip()).evaluate(
            IMAGE_MARKER_ENVIRONMENT
        )
        if keeping:
            kept.append(f"{requirement} \\" if marker.endswith("\\") else requirement)
    return "\n".join(kept) + "\n"


def _python() -> str:
    """The Python that made the virtualenv: uv is installed there (scripts/bootstrap.sh)."""
    return str(getattr(sys, "_base_executable", sys.executable))


def _record(tag: str, record: dict[str, object]) -> None:
    RECORDS_DIR.mkdir(parents=True, exist_ok=True)
    (RECORDS_DIR / f"app-images-{tag}.json").write_text(json.dumps(record))


def _remove_older(engine: Engine, images: AppImages) -> None:
    for app in APPS:
        remove_older(engine, f"{REPOSITORY}/order-{app}", images.tag)


def remove_older(engine: Engine, repository: str, tag: str) -> None:
    """Untags the images of earlier trees: only their changed layers take space, but they add up."""
    for older in docker(engine, "images", repository, "--format", "{{.Tag}}").split():
        if older != tag:
            docker(engine, "rmi", f"{repository}:{older}")
