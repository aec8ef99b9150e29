"""The two app images (Dockerfile, built by cluster/app_images.py as `./run cluster` builds
them): each app starts as the chart runs it (its user, a read-only root filesystem, no
capabilities, no network but loopback) and answers its health check; the images carry the
runtime dependencies only. No cluster needed; every container started here is removed.

In the default run; alone: `./run_tests.sh -m docker` (the first run on a machine without a
registry makes the Debian base and downloads the wheels: a few minutes).
"""

import contextlib
import json
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from cluster import app_images
from cluster.docker import Engine, docker
from devstack.binaries import MissingToolError

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1800)]

USER = "10001:10001"  # the chart's podSecurityContext
HEALTH_DEADLINE_SECONDS = 60.0


@pytest.fixture(scope="module")
def images(running_engine: Engine) -> app_images.AppImages:
    return app_images.build(running_engine, app_images.offline(running_engine))


@contextlib.contextmanager
def container(
    running_engine: Engine, image: str, *command: str, writable: str = "", env: str = ""
) -> Iterator[str]:
    """A detached container run as the chart runs its pods; removed afterwards."""
    name = f"order-service-image-test-{uuid.uuid4().hex[:8]}"
    options = ["--name", name, "--read-only", "--cap-drop", "ALL", "--user", USER]
    options += ["--security-opt", "no-new-privileges", "--network", "none"]
    if writable:
        options += ["--tmpfs", f"{writable}:uid=10001,gid=10001"]
    if env:
        options += ["--env", env]
    docker(running_engine, "run", "--detach", *options, image, *command)
    try:
        yield name
    finally:
        docker(running_engine, "rm", "--force", name)


def health(running_engine: Engine, name: str, port: int) -> object:
    """/health/live from inside the container, once it answers (within the deadline)."""
    probe = (
        "import urllib.request as u; "
        f"print(u.urlopen('http://127.0.0.1:{port}/health/live', timeout=2).read().decode())"
    )
    deadline = time.monotonic() + HEALTH_DEADLINE_SECONDS
    while True:
        try:
            return json.loads(docker(running_engine, "exec", name, "python", "-c", probe))
        except (MissingToolError, subprocess.TimeoutExpired, json.JSONDecodeError):
            if time.monotonic() > deadline:
                logs = "\n".join(logged_lines(running_engine, name))
                pytest.fail(f"{name} did not answer /health/live; its log:\n{logs}")
            time.sleep(0.5)


def logged_lines(running_engine: Engine, name: str) -> list[str]:
    logs = subprocess.run(["docker", "logs", name], env=running_engine.env(),
                          capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    return (logs.stdout + logs.stderr).splitlines()


def test_the_api_answers_its_health_check_and_logs_json(
    running_engine: Engine, images: app_images.AppImages
) -> None:
    with container(running_engine, images.image("api")) as name:
        assert health(running_engine, name, 8000) == {"status": "ok"}
        lines = logged_lines(running_engine, name)
    assert lines
    assert all(isinstance(json.loads(line), dict) for line in lines)


def test_the_placer_answers_its_health_check(
    running_engine: Engine, images: app_images.AppImages
) -> None:
    with container(running_engine, images.image("placer"), writable="/var/lib/placer") as name:
        assert health(running_engine, name, 8001) == {"status": "ok"}


def test_the_exchange_stand_in_runs_from_the_placer_image(
    running_engine: Engine, images: app_images.AppImages
) -> None:
    # As the chart runs it: its own ledger on a writable volume.
    command = ("python", "-m", "exchange")
    ledger = "EXCHANGE_LEDGER_PATH=/var/lib/exchange/ledger.sqlite3"
    with container(
        running_engine, images.image("placer"), *command, writable="/var/lib/exchange", env=ledger
    ) as name:
        assert health(running_engine, name, 8003) == {"status": "ok"}


@pytest.mark.parametrize("app", app_images.APPS)
def test_each_image_runs_its_app_as_the_charts_user(
    running_engine: Engine, images: app_images.AppImages, app: str
) -> None:
    config = json.loads(
        docker(
            running_engine, "image", "inspect", "--format", "{{json .Config}}", images.image(app)
        )
    )
    assert config["User"] == USER
    assert config["Cmd"] == ["python", "-m", {"api": "app", "placer": "placer"}[app]]
    assert {"LOG_FORMAT=json", "ENVIRONMENT=production"} <= set(config["Env"])


def test_the_images_hold_the_runtime_dependencies_only(
    running_engine: Engine, images: app_images.AppImages
) -> None:
    check = (
        "import importlib.util as u; "
        "print([m for m in ('fastapi', 'dapr', 'grpc', 'uvloop') if u.find_spec(m) is None], "
        "[m for m in ('pip', 'uv', 'pytest', 'mypy', 'ruff') if u.find_spec(m) is not None])"
    )
    output = docker(running_engine, "run", "--rm", "--network", "none", images.image("api"),
                    "python", "-c", check)  # fmt: skip
    assert output.strip() == "[] []"  # nothing missing, no build or dev tools


def test_an_unchanged_tree_is_not_rebuilt(
    running_engine: Engine, images: app_images.AppImages
) -> None:
    before = docker(running_engine, "images", "-q", images.image("api")).strip()
    again = app_images.build(running_engine, app_images.offline(running_engine))
    assert again == images
    assert docker(running_engine, "images", "-q", again.image("api")).strip() == before
