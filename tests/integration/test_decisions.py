"""An order's decision (claimed by the placer, or voided by the API) on the real stores: the
first one recorded holds, and the placer never places a voided order."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from core.config import settings
from core.domain import Decision, Order, OrderRequest
from core.repository import OrderRepository
from core.sidecar import DaprSidecar
from placer.stock_exchange import ExchangeLedger
from tests.factories import market_order_body
from tests.integration.stack_fixtures import RunningStack
from tests.polling import wait_for

pytestmark = pytest.mark.anyio


@pytest.fixture
async def orders(healthy_stack: RunningStack) -> AsyncIterator[OrderRepository]:
    """The API's repository, on the API's own sidecar (with the outbox)."""
    sidecar = DaprSidecar(
        healthy_stack.stack.api.dapr_url,
        api_token=healthy_stack.options.dapr_api_token,
        timeout_seconds=5,
    )
    yield OrderRepository(sidecar, settings.STATE_STORE)
    await sidecar.aclose()


async def test_first_decision_holds_and_only_a_void_can_be_lifted(
    orders: OrderRepository,
) -> None:
    order_id = str(uuid.uuid4())
    assert await orders.decide(order_id, Decision.VOID) is Decision.VOID
    assert await orders.decide(order_id, Decision.PLACE) is Decision.VOID
    await orders.lift_void(order_id)
    assert await orders.decide(order_id, Decision.PLACE) is Decision.PLACE
    await orders.lift_void(order_id)  # a claim is never lifted
    assert await orders.decide(order_id, Decision.VOID) is Decision.PLACE


async def test_decisions_for_many_orders_keep_the_ones_recorded_first(
    orders: OrderRepository,
) -> None:
    claimed, voided, new = (str(uuid.uuid4()) for _ in range(3))
    await orders.decide(claimed, Decision.PLACE)
    await orders.decide(voided, Decision.VOID)
    held = await orders.decide_all([claimed, voided, new], Decision.VOID)
    assert held == {claimed: Decision.PLACE, voided: Decision.VOID, new: Decision.VOID}
    assert await orders.decide(new, Decision.PLACE) is Decision.VOID


async def test_racing_decisions_agree_on_one(orders: OrderRepository) -> None:
    order_id = str(uuid.uuid4())
    wanted = [Decision.VOID, Decision.PLACE] * 5
    held = await asyncio.gather(*(orders.decide(order_id, d) for d in wanted))
    assert len(set(held)) == 1


async def test_placer_rejects_a_voided_order_that_commits_late(
    healthy_stack: RunningStack, orders: OrderRepository
) -> None:
    # As when the client got a 500 and the in-doubt commit lands afterwards.
    order = Order.accept(OrderRequest.model_validate(market_order_body()))
    assert await orders.decide(order.id, Decision.VOID) is Decision.VOID
    await orders.create(order)

    def rejected() -> bool:
        stored = healthy_stack.stores.stored_order(order.id)
        return stored is not None and stored["status"] == "rejected"

    wait_for(rejected, what="voided order rejected", timeout_seconds=30)
    assert order.id not in ExchangeLedger(healthy_stack.ledger_path).submissions()
    events = healthy_stack.client.get(f"/orders/{order.id}/events").json()
    assert [event["kind"] for event in events] == ["accepted", "rejected"]
