"""The chart's Dapr wiring is real: its rendered components and configurations boot a real daprd
and an order goes through the API and the placer on them."""

import secrets
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import redis
import yaml
from dapr.proto.runtime.v1 import dapr_pb2_grpc, metadata_pb2, state_pb2

from devstack.config import StateStoreKind
from devstack.processes import ProcessGroup
from devstack.stack import RunningApp
from placer.stock_exchange import ExchangeLedger
from tests.chart.rendering import of_kind, render
from tests.factories import limit_order_body
from tests.integration.stack_fixtures import RunningStack, Stores, running_stack, start_stores
from tests.polling import wait_for

APP_IDS = ("order-service-api", "order-service-placer")
CHART_STATE_STORE = {StateStoreKind.REDIS: "redis", StateStoreKind.POSTGRES: "postgresql"}


# The ACL user the sidecars log in to Redis as, in the run with `redis.usernameKey` set.
REDIS_USER = "orders"


def local_secrets(stores: Stores, redis_password: str = "") -> dict[str, str]:
    """What the chart's Secret would hold, pointing at this test's stores."""
    endpoints = stores.endpoints()
    return {
        "redis-host": endpoints.redis_host,
        "redis-username": REDIS_USER,
        "redis-password": redis_password,
        "postgresql-connection-string": endpoints.postgres_connection_string,
    }


def require_acl_user(stores: Stores) -> str:
    """Gives Redis an ACL user and turns the default user off, so that a sidecar that logs in
    without the user name is refused. Returns the user's password."""
    password = secrets.token_urlsafe(16)
    with redis.Redis(port=stores.redis.port, socket_timeout=5) as client:
        client.acl_setuser(
            REDIS_USER, enabled=True, passwords=[f"+{password}"],
            keys=["*"], channels=["*"], commands=["+@all"],
        )  # fmt: skip
        client.acl_setuser("default", enabled=False)
    return password


def resolve_secrets(component: dict[str, Any], secrets: dict[str, str]) -> dict[str, Any]:
    for item in component["spec"]["metadata"]:
        reference = item.pop("secretKeyRef", None)
        if reference is not None:
            item["value"] = secrets[reference["key"]]
    return component


def app_settings(manifests: list[dict[str, Any]]) -> dict[str, str]:
    """The plain environment the chart gives the API (Dapr names both apps must agree on)."""
    [api] = [d for d in of_kind(manifests, "Deployment") if d["metadata"]["name"].endswith("-api")]
    [container] = api["spec"]["template"]["spec"]["containers"]
    return {item["name"]: item["value"] for item in container["env"] if "value" in item}


def write_chart_components(
    target: Path, manifests: list[dict[str, Any]], stores: Stores, secrets: dict[str, str]
) -> Path:
    """Lays out the chart's Dapr resources as daprd's resources folders expect them, with each
    app's Configuration for its own sidecar."""
    common = target / "common"
    common.mkdir(parents=True)
    (target / stores.kind.value).mkdir()
    components = [resolve_secrets(c, secrets) for c in of_kind(manifests, "Component")]
    for resource in components + of_kind(manifests, "Resiliency"):
        path = common / f"{resource['kind'].lower()}-{resource['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(resource))
    configurations = {c["metadata"]["name"]: c for c in of_kind(manifests, "Configuration")}
    assert configurations.keys() == set(APP_IDS)
    api_id, placer_id = APP_IDS
    (target / "config.yaml").write_text(yaml.safe_dump(configurations[api_id]))
    (target / "config-placer.yaml").write_text(yaml.safe_dump(configurations[placer_id]))
    return target


def publish_status(app: RunningApp, api_token: str, pubsub: str) -> int:
    """What the app's sidecar answers to a publish, on a topic nobody reads."""
    response = httpx.post(
        f"{app.dapr_url}/v1.0/publish/{pubsub}/allow-list-check", json={"check": True},
        headers={"dapr-api-token": api_token}, timeout=10,
    )  # fmt: skip
    return response.status_code


def assert_api_allow_lists(stack: RunningStack, pubsub: str) -> None:
    """Each sidecar serves only the building blocks its app uses, over HTTP and gRPC."""
    token = stack.options.dapr_api_token
    assert token is not None
    assert publish_status(stack.stack.placer, token, pubsub) == 204  # placer.redrive
    assert publish_status(stack.stack.api, token, pubsub) == 404
    invoke = f"{stack.stack.api.dapr_url}/v1.0/invoke/{APP_IDS[1]}/method/anything"
    assert httpx.get(invoke, headers={"dapr-api-token": token}, timeout=10).status_code == 404
    with grpc.insecure_channel(f"127.0.0.1:{stack.stack.api.ports.dapr_grpc}") as channel:
        sidecar = dapr_pb2_grpc.DaprStub(channel)  # type: ignore[no-untyped-call]
        auth = [("dapr-api-token", token)]
        request = state_pb2.GetStateRequest(store_name=stack.options.app_env["STATE_STORE"],
                                            key="allow-list-check")  # fmt: skip
        sidecar.GetState(request, metadata=auth, timeout=10)  # state: allowed
        with pytest.raises(grpc.RpcError) as refused:
            sidecar.GetMetadata(metadata_pb2.GetMetadataRequest(), metadata=auth, timeout=10)
        assert refused.value.code() is grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.parametrize("kind", list(StateStoreKind), ids=lambda kind: kind.value)
def test_order_is_placed_on_the_charts_components(kind: StateStoreKind, tmp_path: Path) -> None:
    """With PostgreSQL as the state store, the sidecars log in to Redis (pub/sub) as an ACL user
    (`redis.usernameKey`); with Redis, as its default user."""
    acl_user = kind is StateStoreKind.POSTGRES
    values = ["--set", f"stateStore.type={CHART_STATE_STORE[kind]}"]
    manifests = render(*values, *(["--set", "redis.usernameKey=redis-username"] * acl_user))
    with ProcessGroup(tmp_path) as stores_group:
        stores = start_stores(stores_group, kind, tmp_path / "data")
        secrets = local_secrets(stores, require_acl_user(stores) if acl_user else "")
        components = write_chart_components(tmp_path / "components", manifests, stores, secrets)
        env = {
            **app_settings(manifests),
            "EXCHANGE_FAILURE_RATE": "0",
            "EXCHANGE_LATENCY_SECONDS": "0.05",
        }
        with running_stack(
            tmp_path / "stack", kind, stores=stores, components=components,
            app_env=env, app_ids=APP_IDS,
        ) as stack:  # fmt: skip
            response = stack.client.post("/orders", json=limit_order_body())
            assert response.status_code == 201
            order_id = response.json()["id"]
            assert stores.stored_order(order_id) is not None
            wait_for(
                lambda: order_id in ExchangeLedger(stack.ledger_path).submissions(),
                what="order placed through the chart's components",
                timeout_seconds=30,
            )
            assert stack.client.get(f"/orders/{order_id}").json()["status"] in {
                "accepted",
                "placed",
            }
            assert_api_allow_lists(stack, env["PUBSUB"])
