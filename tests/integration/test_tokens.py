"""The sidecar, the placer and (with API keys on) the API refuse callers without their
tokens."""

from collections.abc import Iterator

import grpc
import httpx
import pytest
from dapr.proto.runtime.v1 import appcallback_pb2 as callback
from dapr.proto.runtime.v1 import appcallback_pb2_grpc as callback_grpc

from core.config import settings
from devstack.config import StateStoreKind
from tests.factories import market_order_body
from tests.integration.stack_fixtures import RunningStack, running_stack

API_KEY = "client-key-for-tests"


@pytest.fixture(scope="module")
def guarded_stack(
    state_store_kind: StateStoreKind, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    """A stack with client API keys on, as production runs it."""
    tmp = tmp_path_factory.mktemp(f"guarded-{state_store_kind.value}")
    env = {"EXCHANGE_FAILURE_RATE": "0", "EXCHANGE_LATENCY_SECONDS": "0.05", "API_KEYS": API_KEY}
    with running_stack(tmp, state_store_kind, app_env=env) as stack:
        yield stack


def test_api_refuses_orders_without_a_client_key(guarded_stack: RunningStack) -> None:
    before = guarded_stack.stores.stored_order_count()
    refused = guarded_stack.client.post("/orders", json=market_order_body())
    assert refused.status_code == 401
    assert guarded_stack.stores.stored_order_count() == before
    key = {"X-API-Key": API_KEY}
    created = guarded_stack.client.post("/orders", json=market_order_body(), headers=key)
    assert created.status_code == 201
    order_id = created.json()["id"]
    assert guarded_stack.client.get(f"/orders/{order_id}").status_code == 401
    assert guarded_stack.client.get(f"/orders/{order_id}", headers=key).status_code == 200


def test_api_document_asks_for_the_client_key(guarded_stack: RunningStack) -> None:
    spec = guarded_stack.client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
    for path in ("/orders", "/orders/{order_id}", "/orders/{order_id}/events"):
        for operation in spec["paths"][path].values():
            assert operation["security"] == [{"APIKeyHeader": []}]
    # Without a key nothing tells which orders exist: an unknown id is a 401 too.
    assert guarded_stack.client.get("/orders/does-not-exist-123").status_code == 401


def test_sidecar_refuses_calls_without_the_api_token(guarded_stack: RunningStack) -> None:
    url = f"{guarded_stack.stack.api.dapr_url}/v1.0/state/orderstore/order-x"
    assert httpx.get(url, timeout=5).status_code == 401
    token = {"dapr-api-token": guarded_stack.options.dapr_api_token or ""}
    assert httpx.get(url, headers=token, timeout=5).status_code in (200, 204)


@pytest.mark.parametrize("metadata", [(), (("dapr-api-token", "guess"),)])
def test_placer_refuses_deliveries_without_the_app_token(
    guarded_stack: RunningStack, metadata: tuple[tuple[str, str], ...]
) -> None:
    forged = callback.TopicEventRequest(
        id="forged", topic=settings.ORDERS_TOPIC, data=b'{"id": "forged"}'
    )
    placer = f"127.0.0.1:{guarded_stack.stack.placer.ports.callback}"
    with grpc.insecure_channel(placer) as channel, pytest.raises(grpc.RpcError) as refused:
        callback_grpc.AppCallbackStub(channel).OnTopicEvent(forged, metadata=metadata, timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert httpx.get(f"{guarded_stack.stack.placer.url}/health/live", timeout=5).status_code == 200
