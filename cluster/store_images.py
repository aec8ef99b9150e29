"""Redis and PostgreSQL for the chart's development profile (`devStores`) where their official
images cannot be pulled: Debian's `redis-server` and `postgresql` on Debian bases made like
the node's (cluster/base.py), each with an entrypoint that honours the official image's
contract as the chart uses it (stores/). Built on the cluster's engine, tagged with a hash of
what goes into them, loaded into the kind node when it lacks them. Where the official images
can be pulled, nothing is built and the chart's defaults stand."""

import hashlib
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cluster import app_images, base
from cluster.docker import Engine, docker
from cluster.steps import Stages, run_logged
from devstack.binaries import CACHE_DIR
from devstack.processes import say

REPOSITORY = "order-service"  # images are <repository>/dev-<store>:<key>
CONTEXT = Path(__file__).with_name("stores")
# Each store's Debian packages (bookworm: Redis 7.0, PostgreSQL 15; tzdata for PostgreSQL's
# time zones, which Debian builds against the system's) and the files its build copies.
PACKAGES: dict[str, tuple[str, ...]] = {
    "redis": ("redis-server",),
    "postgresql": ("postgresql", "tzdata"),
}
INPUTS: dict[str, tuple[str, ...]] = {
    "redis": ("Dockerfile.redis", "redis-entrypoint.sh"),
    "postgresql": ("Dockerfile.postgresql", "postgresql-entrypoint.sh"),
}
RECORDS_DIR = CACHE_DIR / "cluster" / "images"
TMP_DIR = CACHE_DIR / "cluster" / "tmp"
BUILD_TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class StoreImages:
    tags: dict[str, str]  # store -> key

    def image(self, store: str) -> str:
        return f"{self.repository(store)}:{self.tags[store]}"

    @staticmethod
    def repository(store: str) -> str:
        return f"{REPOSITORY}/dev-{store}"

    @property
    def all(self) -> list[str]:
        return [self.image(store) for store in PACKAGES]

    def helm_values(self) -> dict[str, str]:
        """What the chart's development profile needs to run these (`--set key=value` each)."""
        values = {}
        for store in PACKAGES:
            values[f"devStores.{store}.image.repository"] = self.repository(store)
            values[f"devStores.{store}.image.tag"] = self.tags[store]
        return values


def stages(engine: Engine, stages: Stages, build_offline: bool, cluster: str) -> StoreImages | None:
    """Builds (or finds) both images and loads them into the node, each a timed stage; None
    where the official images are used (nothing to do)."""
    if not build_offline:
        return None
    with stages.stage("store images") as facts:
        facts["cached"] = cached(engine)
        images = build(engine)
        facts["tags"] = images.tags
        facts["bytes"] = app_images.image_sizes(engine, images.all)
        facts["cold_build"] = {store: build_record(images, store) for store in PACKAGES}
        facts["base_cold_build"] = {
            store: base.build_record(_base_name(store), packages)
            for store, packages in PACKAGES.items()
        }
    with stages.stage("store images load"):
        app_images.load_images(engine, images.all, cluster)
    say(
        f"Store images loaded: {', '.join(images.all)}; the development profile's values: "
        + " ".join(f"--set {key}={value}" for key, value in images.helm_values().items())
    )
    return images


def current() -> StoreImages:
    """The tags of the current inputs (without building anything)."""
    return StoreImages({store: _key(store) for store in PACKAGES})


def cached(engine: Engine) -> bool:
    return all(docker(engine, "images", "-q", image).strip() for image in current().all)


def build(engine: Engine) -> StoreImages:
    """Both images of the current inputs, each built unless the engine has it."""
    images = current()
    for store, packages in PACKAGES.items():
        if docker(engine, "images", "-q", images.image(store)).strip():
            continue
        base_image = base.debian_image(engine, _base_name(store), packages)
        started = time.monotonic()
        _build(engine, store, base_image, images.image(store))
        _record(images, store, {"seconds": round(time.monotonic() - started, 1)})
        app_images.remove_older(engine, images.repository(store), images.tags[store])
    return images


def build_record(images: StoreImages, store: str) -> dict[str, object]:
    """What building this image took ({} if not recorded)."""
    path = RECORDS_DIR / f"dev-{store}-{images.tags[store]}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _build(engine: Engine, store: str, base_image: str, image: str) -> None:
    """docker build of the store's Dockerfile in a context holding only its inputs."""
    TMP_DIR.mkdir(parents=True, exist_ok=True)
    context = Path(tempfile.mkdtemp(prefix=f"dev-{store}-", dir=TMP_DIR))
    try:
        for name in INPUTS[store]:
            shutil.copy2(CONTEXT / name, context / name)
        say(f"Building {image}")
        command = ["nice", "-n", "19", "docker", "build", "--force-rm"]
        command += ["--file", str(context / INPUTS[store][0]), "--tag", image]
        command += ["--build-arg", f"BASE_IMAGE={base_image}", str(context)]
        run_logged(command, what=f"docker build dev-{store}", log_name=f"docker-build-dev-{store}",
                   timeout_seconds=BUILD_TIMEOUT_SECONDS, env=engine.env())  # fmt: skip
    finally:
        shutil.rmtree(context, ignore_errors=True)


def _base_name(store: str) -> str:
    return f"dev-{store}-base"


def _key(store: str) -> str:
    """A hash of the base (its tag is keyed by suite and packages) and the build's inputs."""
    digest = hashlib.sha256(f"{base.image_tag(_base_name(store), PACKAGES[store])}\n".encode())
    for name in INPUTS[store]:
        digest.update(f"{name}\n".encode())
        digest.update(hashlib.sha256((CONTEXT / name).read_bytes()).digest())
    return digest.hexdigest()[:12]


def _record(images: StoreImages, store: str, record: dict[str, object]) -> None:
    RECORDS_DIR.mkdir(parents=True, exist_ok=True)
    (RECORDS_DIR / f"dev-{store}-{images.tags[store]}.json").write_text(json.dumps(record))
