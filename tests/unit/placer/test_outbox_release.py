"""Releasing outbox messages whose commit failed, with fakes for the store and the sidecar."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.domain import Decision, Order
from core.sidecar import SidecarError
from placer.outbox_release import MARKER_TTL_SECONDS, OutboxRelease
from placer.placement import Delivery
from tests.factories import accepted_order

MARKER = "outbox-5b0f3c1e-2a4d-4f7e-9c61-0d1e2f3a4b5c"


class FakeOrders:
    def __init__(self, *orders: Order) -> None:
        self.saved = {order.id: order for order in orders}
        self.decisions: dict[str, Decision] = {}
        self.failure: Exception | None = None

    async def get(self, order_id: str) -> Order | None:
        if self.failure:
            raise self.failure
        return self.saved.get(order_id)

    async def decide(self, order_id: str, decision: Decision) -> Decision:
        return self.decisions.setdefault(order_id, decision)


class FakeSidecar:
    def __init__(self) -> None:
        self.saved: list[tuple[str, str, Any, int | None]] = []

    async def save_state(
        self, store: str, key: str, value: Any, *, ttl_seconds: int | None = None
    ) -> None:
        self.saved.append((store, key, value, ttl_seconds))


def answered_order() -> Order:
    """An order whose client has had its answer: the API's deadline is behind it."""
    return accepted_order().model_copy(
        update={"created_at": datetime.now(UTC) - timedelta(minutes=1)}
    )


def outbox_message(order: Order, marker: str = MARKER) -> dict[str, Any]:
    return {"id": marker, "data": order.model_dump(mode="json")}


def release(orders: FakeOrders, sidecar: FakeSidecar) -> OutboxRelease:
    return OutboxRelease(
        orders,  # type: ignore[arg-type]
        sidecar,  # type: ignore[arg-type]
        "outbox-markers",
        answer_deadline_seconds=3,
    )


@pytest.mark.anyio
async def test_committed_order_is_left_to_the_runtime() -> None:
    order = answered_order()
    orders, sidecar = FakeOrders(order), FakeSidecar()
    assert await release(orders, sidecar).release_if_failed(outbox_message(order)) is (
        Delivery.SUCCESS
    )
    assert sidecar.saved == []
    assert orders.decisions == {}


@pytest.mark.anyio
async def test_order_never_committed_is_voided_and_its_marker_written() -> None:
    order = answered_order()
    orders, sidecar = FakeOrders(), FakeSidecar()
    assert await release(orders, sidecar).release_if_failed(outbox_message(order)) is (
        Delivery.SUCCESS
    )
    assert orders.decisions == {order.id: Decision.VOID}
    assert sidecar.saved == [("outbox-markers", MARKER, "0", MARKER_TTL_SECONDS)]


@pytest.mark.anyio
async def test_unreadable_store_asks_for_a_retry_and_writes_nothing() -> None:
    orders, sidecar = FakeOrders(), FakeSidecar()
    orders.failure = SidecarError("store down")
    delivery = await release(orders, sidecar).release_if_failed(outbox_message(answered_order()))
    assert delivery is Delivery.RETRY
    assert sidecar.saved == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    "event",
    [
        {"id": "not-an-outbox-marker", "data": {}},
        {"data": {"not": "an order"}},
        {"id": MARKER, "data": "garbage"},
    ],
)
async def test_other_messages_are_acknowledged_untouched(event: dict[str, Any]) -> None:
    orders, sidecar = FakeOrders(), FakeSidecar()
    if event.get("data") == {}:
        event["data"] = answered_order().model_dump(mode="json")
    assert await release(orders, sidecar).release_if_failed(event) is Delivery.SUCCESS
    assert sidecar.saved == [] and orders.decisions == {}
