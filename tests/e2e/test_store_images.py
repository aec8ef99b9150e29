"""The development profile's store images built here (cluster/store_images.py, as `./run
cluster` builds them where the official images cannot be pulled): each runs as the chart runs
it (its arguments and environment, user 999, a read-only root filesystem with the chart's
volumes, no capabilities), answers the chart's probes, and serves clients from another
container as pods reach it through its Service. No cluster needed; every container started
here is removed.

In the default run; alone: `./run_tests.sh -m docker` (the first run makes the two Debian
bases: a few minutes).
"""

import contextlib
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from cluster import store_images
from cluster.docker import Engine, docker

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1800)]

# As charts/order-service/templates/dev-stores.yaml runs them (tests/chart/test_chart_dev_stores.py
# checks the chart says so).
USER = "999:999"
VOLUMES = {
    "redis": ("/data", "/var/run/postgresql", "/tmp"),
    "postgresql": ("/data", "/var/run/postgresql", "/tmp"),
}
REDIS_ARGS = ("--appendonly", "yes", "--appendfsync", "always", "--save", "")
POSTGRESQL_ARGS = ("-c", "max_connections=300", "-c", "fsync=on", "-c", "synchronous_commit=on")
POSTGRESQL_ENV = {
    "POSTGRES_PASSWORD": "dev-only",
    "POSTGRES_DB": "orders",
    "PGDATA": "/data/pgdata",
}
READY_DEADLINE_SECONDS = 90.0


@pytest.fixture(scope="module")
def images(running_engine: Engine) -> store_images.StoreImages:
    return store_images.build(running_engine)


@contextlib.contextmanager
def store(
    running_engine: Engine,
    image: str,
    store_name: str,
    *args: str,
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """A detached container run as the chart runs the store's pod; removed afterwards."""
    name = f"order-service-store-test-{uuid.uuid4().hex[:8]}"
    options = ["--name", name, "--read-only", "--cap-drop", "ALL", "--user", USER]
    options += ["--security-opt", "no-new-privileges"]
    for path in VOLUMES[store_name]:  # emptyDirs owned by the pod's fsGroup
        options += ["--tmpfs", f"{path}:uid=999,gid=999"]
    for key, value in (env or {}).items():
        options += ["--env", f"{key}={value}"]
    docker(running_engine, "run", "--detach", *options, image, *args)
    try:
        yield name
    finally:
        docker(running_engine, "rm", "--force", name)


def run(running_engine: Engine, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], env=running_engine.env(), capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip


def until_ok(running_engine: Engine, name: str, *args: str) -> str:
    """The output of `args`, once it succeeds (within the deadline), else the container's log."""
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    while True:
        result = run(running_engine, *args)
        if result.returncode == 0:
            return result.stdout.strip()
        if time.monotonic() > deadline:
            logs = run(running_engine, "logs", name)
            pytest.fail(
                f"{' '.join(args)}: {result.stderr}\n{name}'s log:\n{logs.stdout}{logs.stderr}"
            )
        time.sleep(0.5)


def address(running_engine: Engine, name: str) -> str:
    return docker(running_engine, "inspect", "--format",
                  "{{.NetworkSettings.IPAddress}}", name).strip()  # fmt: skip


def test_redis_answers_the_probe_and_other_containers_with_append_only_on(
    running_engine: Engine, images: store_images.StoreImages
) -> None:
    image = images.image("redis")
    with store(running_engine, image, "redis", *REDIS_ARGS) as name:
        assert until_ok(running_engine, name, "exec", name, "redis-cli", "ping") == "PONG"
        # A client from elsewhere, as pods through the Service: protected mode must be off.
        client = ["run", "--rm", "--network", "bridge", image, "redis-cli", "-h"]
        other = until_ok(running_engine, name, *client, address(running_engine, name), "ping")
        assert other == "PONG"
        appendonly = docker(
            running_engine, "exec", name, "redis-cli", "config", "get", "appendonly"
        )
        appendfsync = docker(
            running_engine, "exec", name, "redis-cli", "config", "get", "appendfsync"
        )
        directory = docker(running_engine, "exec", name, "redis-cli", "config", "get", "dir")
        user = docker(running_engine, "exec", name, "id", "-u")
    assert appendonly.split() == ["appendonly", "yes"]
    assert appendfsync.split() == ["appendfsync", "always"]
    assert directory.split() == ["dir", "/data"]  # the chart's volume
    assert user.strip() == "999"


def test_redis_takes_a_password_as_an_argument(
    running_engine: Engine, images: store_images.StoreImages
) -> None:
    image = images.image("redis")
    with store(running_engine, image, "redis", *REDIS_ARGS, "--requirepass", "s3cret") as name:
        with_password = ("exec", name, "redis-cli", "--no-auth-warning", "-a", "s3cret", "ping")
        assert until_ok(running_engine, name, *with_password) == "PONG"
        without = run(running_engine, "exec", name, "redis-cli", "ping")
    assert "NOAUTH" in without.stdout + without.stderr


def test_postgresql_initialises_the_database_and_takes_password_logins_only(
    running_engine: Engine, images: store_images.StoreImages
) -> None:
    image = images.image("postgresql")
    with store(running_engine, image, "postgresql", *POSTGRESQL_ARGS, env=POSTGRESQL_ENV) as name:
        query = "select current_database(), current_user, current_setting('max_connections')"
        login = ["psql", "--no-psqlrc", "-At", "-h"]
        login_as = [*login, address(running_engine, name), "-U", "postgres", "-d", "orders", "-c"]
        client = ["run", "--rm", "--network", "bridge", "--env", "PGPASSWORD=dev-only", image]
        # From another container over TCP, as the sidecars' components connect.
        answer = until_ok(running_engine, name, *client, *login_as, query)
        probe = run(running_engine, "exec", name, "pg_isready", "-U", "postgres")
        wrong = run(running_engine, "run", "--rm", "--network", "bridge", "--env",
                    "PGPASSWORD=wrong", image, *login_as, "select 1")  # fmt: skip
        local = ["exec", "--env", "PGPASSWORD=wrong", name, *login, "127.0.0.1", "-U", "postgres"]
        wrong_local = run(running_engine, *local, "-d", "orders", "-c", "select 1")
        data = docker(running_engine, "exec", name, "ls", "/data/pgdata")
        user = docker(running_engine, "exec", name, "id", "-u")
    assert answer == "orders|postgres|300"
    assert probe.returncode == 0, probe.stdout + probe.stderr
    assert wrong.returncode != 0
    assert "password authentication failed" in wrong.stderr
    assert "password authentication failed" in wrong_local.stderr  # TCP needs it on loopback too
    assert "PG_VERSION" in data.split()  # PGDATA on the chart's volume
    assert user.strip() == "999"


def test_postgresql_refuses_to_start_without_a_password(
    running_engine: Engine, images: store_images.StoreImages
) -> None:
    image = images.image("postgresql")
    env = {key: value for key, value in POSTGRESQL_ENV.items() if key != "POSTGRES_PASSWORD"}
    with store(running_engine, image, "postgresql", env=env) as name:
        status = until_ok(running_engine, name, "wait", name)
        logs = run(running_engine, "logs", name)
    assert status != "0"
    assert "POSTGRES_PASSWORD must be set" in logs.stderr


def test_unchanged_inputs_are_not_rebuilt(
    running_engine: Engine, images: store_images.StoreImages
) -> None:
    before = [docker(running_engine, "images", "-q", image).strip() for image in images.all]
    again = store_images.build(running_engine)
    assert again == images
    assert [docker(running_engine, "images", "-q", image).strip() for image in again.all] == before


def test_images_have_the_official_entrypoints_shape(
    running_engine: Engine, images: store_images.StoreImages
) -> None:
    """The chart gives arguments only; the images' users are the chart's."""
    for store_name, command in (("redis", "redis-server"), ("postgresql", "postgres")):
        shape = "{{json .Config.Cmd}} {{.Config.User}}"
        config = docker(
            running_engine, "image", "inspect", "--format", shape, images.image(store_name)
        )
        assert config.split() == [f'["{command}"]', USER]
