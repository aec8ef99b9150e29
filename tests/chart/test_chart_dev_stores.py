"""The development profile's Redis and PostgreSQL (`devStores`): the official images by default,
images of one's own through values, and the contract both must honour as the chart uses it."""

from typing import Any

import pytest

from cluster.store_images import StoreImages
from tests.chart.rendering import CHART, KUBERNETES_VERSION, RELEASE, helm, of_kind, render

DEV = ["-f", str(CHART / "values-dev.yaml")]


def store_containers(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The store Deployments' containers by store."""
    containers = {}
    for deployment in of_kind(manifests, "Deployment"):
        name = deployment["metadata"]["name"].removeprefix(f"{RELEASE}-")
        if name in ("redis", "postgresql"):
            [container] = deployment["spec"]["template"]["spec"]["containers"]
            containers[name] = container
    return containers


def test_the_official_images_by_default() -> None:
    containers = store_containers(render(*DEV))
    assert {store: c["image"] for store, c in containers.items()} == {
        "redis": "redis:7.4",
        "postgresql": "postgres:16",
    }


def test_the_images_built_here_through_the_values_cluster_prints() -> None:
    built = StoreImages({"redis": "0123abcd", "postgresql": "4567ef01"})
    values = [arg for item in built.helm_values().items() for arg in ("--set", "=".join(item))]
    containers = store_containers(render(*DEV, *values))
    assert {store: c["image"] for store, c in containers.items()} == {
        "redis": "order-service/dev-redis:0123abcd",
        "postgresql": "order-service/dev-postgresql:4567ef01",
    }


def test_the_contract_every_store_image_must_honour() -> None:
    """What the Debian-built images reproduce (cluster/stores/): any change here must be made
    there too (tests/e2e/test_store_images.py runs them this way)."""
    manifests = render(*DEV)
    containers = store_containers(manifests)
    redis, postgresql = containers["redis"], containers["postgresql"]
    assert "command" not in redis and "command" not in postgresql  # the images' entrypoints
    assert redis["args"] == ["--appendonly", "yes", "--appendfsync", "always", "--save", ""]
    assert redis["readinessProbe"]["exec"]["command"] == ["redis-cli", "ping"]
    assert postgresql["args"] == [
        "-c", "max_connections=300", "-c", "fsync=on", "-c", "synchronous_commit=on",
    ]  # fmt: skip
    env = {item["name"]: item["value"] for item in postgresql["env"]}
    assert env == {
        "POSTGRES_PASSWORD": "dev-only",
        "POSTGRES_DB": "orders",
        "PGDATA": "/data/pgdata",
    }
    assert postgresql["readinessProbe"]["exec"]["command"] == ["pg_isready", "-U", "postgres"]
    mounts = {mount["mountPath"] for mount in postgresql["volumeMounts"]}
    assert {"/data", "/var/run/postgresql", "/tmp"} <= mounts  # the root filesystem is read-only
    for container in containers.values():
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
    pods = [d["spec"]["template"]["spec"] for d in of_kind(manifests, "Deployment")]
    users = {
        p["securityContext"]["runAsUser"] for p in pods if p["containers"][0] in containers.values()
    }
    assert users == {999}  # the official images' redis and postgres users, and ours
    [secret] = [s for s in of_kind(manifests, "Secret") if "stringData" in s and
                "postgresql-connection-string" in s["stringData"]]  # fmt: skip
    connection = secret["stringData"]["postgresql-connection-string"]
    assert "user=postgres password=dev-only dbname=orders" in connection


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("devStores.redis.image.tag=", "/devStores/redis/image/tag"),
        ("devStores.postgresql.image.digest=sha256:0", "/devStores/postgresql/image"),
    ],
)
def test_values_schema_rejects_bad_store_images(value: str, message: str) -> None:
    result = helm(
        "template", RELEASE, str(CHART), "--kube-version", KUBERNETES_VERSION, "--set", value
    )
    assert result.returncode != 0
    assert message in result.stderr


def _app_init_containers(manifests: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    return {
        deployment["metadata"]["name"]: deployment["spec"]["template"]["spec"].get(
            "initContainers", []
        )
        for deployment in of_kind(manifests, "Deployment")
        if deployment["metadata"]["name"] in (f"{RELEASE}-api", f"{RELEASE}-placer")
    }


def test_the_apps_wait_for_the_dev_stores_before_their_sidecars_start() -> None:
    # daprd exits when a component cannot connect; the stores start with the release.
    for name, init in _app_init_containers(render(*DEV)).items():
        [container] = init
        assert container["name"] == "wait-for-stores", name
        assert container["command"][-2:] == [f"{RELEASE}-redis:6379", f"{RELEASE}-postgresql:5432"]
        assert container["image"] == f"order-service/order-{name.rsplit('-', 1)[1]}:dev"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_without_dev_stores_the_apps_have_no_init_container() -> None:
    init = _app_init_containers(render())
    assert init == {f"{RELEASE}-api": [], f"{RELEASE}-placer": []}
