"""An outbox message whose commit failed: the runtime would wait for its marker for ever (and
poll the store in a tight loop); the placer releases it, and the order is never placed."""

import json

import httpx
import pytest
import redis

from core.config import settings
from core.domain import Order, OrderRequest
from core.repository import OUTBOX_PROJECTION_METADATA, decision_key, order_key
from devstack.config import StateStoreKind
from placer.stock_exchange import ExchangeLedger
from tests.factories import market_order_body
from tests.integration.stack_fixtures import RunningStack
from tests.polling import wait_for

RELEASE_DEADLINE_SECONDS = 30


@pytest.fixture(scope="module")
def state_store_kind() -> StateStoreKind:
    # PostgreSQL refuses a whole transaction it can reach; Redis applies the rest of a failed
    # MULTI, the commit marker included, so its orphans come from outages only (the fault
    # matrix restarts Redis).
    return StateStoreKind.POSTGRES


def fail_a_commit(stack: RunningStack, order: Order) -> None:
    """A state transaction that the runtime publishes to its outbox topic, then fails to
    commit: an etag cannot match a key that does not exist."""
    document = order.model_dump(mode="json")
    key = order_key(order.id)
    first_write = {"etag": "1", "options": {"concurrency": "first-write"}}
    operations = [
        {"operation": "upsert", "request": {"key": key, "value": document, **first_write}},
        {
            "operation": "upsert",
            "request": {"key": key, "value": document, "metadata": OUTBOX_PROJECTION_METADATA},
        },
    ]
    response = httpx.post(
        f"{stack.stack.api.dapr_url}/v1.0/state/{settings.STATE_STORE}/transaction",
        json={"operations": operations},
        headers={"dapr-api-token": stack.options.dapr_api_token or ""},
        timeout=10,
    )
    assert response.is_error, response.text


def outbox_messages_pending_at_the_api(stack: RunningStack) -> int:
    """Messages the API's sidecar took from the outbox topic and has not finished."""
    with redis.Redis(port=stack.stores.redis.port, socket_timeout=5) as client:
        summary = client.xpending(settings.OUTBOX_TOPIC, stack.options.api_app_id)
    return int(summary["pending"])


def decision(stack: RunningStack, order_id: str) -> str | None:
    response = httpx.get(
        f"{stack.stack.api.dapr_url}/v1.0/state/{settings.STATE_STORE}/{decision_key(order_id)}",
        headers={"dapr-api-token": stack.options.dapr_api_token or ""},
        timeout=10,
    )
    response.raise_for_status()
    return json.loads(response.content) if response.content else None


def test_outbox_message_of_a_failed_commit_is_released_and_never_placed(
    healthy_stack: RunningStack,
) -> None:
    order = Order.accept(OrderRequest.model_validate(market_order_body()))
    fail_a_commit(healthy_stack, order)
    # The API's sidecar holds the message, waiting for a marker that never comes.
    wait_for(
        lambda: outbox_messages_pending_at_the_api(healthy_stack) == 1,
        what="outbox message taken by the API's sidecar",
        timeout_seconds=3,
    )

    def released() -> bool:
        voided = decision(healthy_stack, order.id) == "void"
        return voided and outbox_messages_pending_at_the_api(healthy_stack) == 0

    # Without the release it would stay pending there for good.
    wait_for(released, what="outbox message released", timeout_seconds=RELEASE_DEADLINE_SECONDS)
    assert healthy_stack.stores.stored_order(order.id) is None
    assert order.id not in ExchangeLedger(healthy_stack.ledger_path).submissions()
