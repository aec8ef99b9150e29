"""Releasing outbox messages whose commit failed, with fakes for the store and the sidecar."""

from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest

from core.domain import Decision, Order
from core.sidecar import SidecarError
from placer.outbox_release import MARKER_TTL_SECONDS, OutboxRelease
from placer.placement import Delivery
from tests.factories import accepted_order

MARKER = "outbox-5b0f3c1e-2a4d-4f7e-9c61-0d1e2f3a4b5c"
OTHER_MARKER = "outbox-9d2e4f60-1b3c-4a5d-8e7f-6a5b4c3d2e1f"


class FakeOrders:
    def __init__(self, *orders: Order) -> None:
        self.saved = {order.id: order for order in orders}
        self.decisions: dict[str, Decision] = {}
        self.failure: Exception | None = None
        self.refused: set[str] = set()  # orders whose decision cannot be written
        self.reads: list[list[str]] = []
        self.delay_seconds = 0.0

    async def find_uncommitted(self, order_ids: list[str]) -> dict[str, Decision | None]:
        self.reads.append(order_ids)
        await anyio.sleep(self.delay_seconds)
        if self.failure:
            raise self.failure
        return {i: self.decisions.get(i) for i in order_ids if i not in self.saved}

    async def decide_all(
        self, order_ids: list[str], decision: Decision
    ) -> dict[str, Decision | None]:
        for order_id in set(order_ids) - self.refused:
            self.decisions.setdefault(order_id, decision)
        return {order_id: self.decisions.get(order_id) for order_id in order_ids}


class FakeSidecar:
    def __init__(self) -> None:
        self.markers: dict[str, tuple[str, Any, int]] = {}
        self.failure: Exception | None = None

    async def save_in_transaction(
        self, store: str, values: dict[str, Any], *, ttl_seconds: int
    ) -> None:
        if self.failure:
            raise self.failure
        self.markers |= {key: (store, value, ttl_seconds) for key, value in values.items()}


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


async def released(orders: FakeOrders, sidecar: FakeSidecar, batch: dict[str, Any]) -> Any:
    return await release(orders, sidecar).release_failed(batch)


@pytest.mark.anyio
async def test_committed_order_is_left_to_the_runtime() -> None:
    order = answered_order()
    orders, sidecar = FakeOrders(order), FakeSidecar()
    assert await released(orders, sidecar, {"e1": outbox_message(order)}) == {
        "e1": Delivery.SUCCESS
    }
    assert sidecar.markers == {}
    assert orders.decisions == {}


@pytest.mark.anyio
async def test_order_never_committed_is_voided_and_its_marker_written() -> None:
    order = answered_order()
    orders, sidecar = FakeOrders(), FakeSidecar()
    assert await released(orders, sidecar, {"e1": outbox_message(order)}) == {
        "e1": Delivery.SUCCESS
    }
    assert orders.decisions == {order.id: Decision.VOID}
    assert sidecar.markers == {MARKER: ("outbox-markers", "0", MARKER_TTL_SECONDS)}


@pytest.mark.anyio
async def test_a_batch_is_read_once_and_only_its_failed_commits_released() -> None:
    committed, failed = answered_order(), answered_order()
    orders, sidecar = FakeOrders(committed), FakeSidecar()
    batch = {"e1": outbox_message(committed, OTHER_MARKER), "e2": outbox_message(failed)}
    answers = await released(orders, sidecar, batch)
    assert answers == {"e1": Delivery.SUCCESS, "e2": Delivery.SUCCESS}
    assert len(orders.reads) == 1
    assert orders.decisions == {failed.id: Decision.VOID}
    assert list(sidecar.markers) == [MARKER]


@pytest.mark.anyio
async def test_order_the_api_voided_already_is_released_without_a_new_decision() -> None:
    order = answered_order()
    orders, sidecar = FakeOrders(), FakeSidecar()
    orders.decisions[order.id] = Decision.VOID
    orders.decide_all = None  # type: ignore[assignment,method-assign]  # must not be called
    assert await released(orders, sidecar, {"e1": outbox_message(order)}) == {
        "e1": Delivery.SUCCESS
    }
    assert list(sidecar.markers) == [MARKER]


@pytest.mark.anyio
async def test_unreadable_store_asks_for_a_retry_of_the_orders_and_writes_nothing() -> None:
    orders, sidecar = FakeOrders(), FakeSidecar()
    orders.failure = SidecarError("store down")
    batch = {"e1": outbox_message(answered_order()), "e2": {"id": "not-an-outbox-marker"}}
    answers = await released(orders, sidecar, batch)
    assert answers == {"e1": Delivery.RETRY, "e2": Delivery.SUCCESS}
    assert sidecar.markers == {}


@pytest.mark.anyio
async def test_order_not_voided_is_retried_and_its_marker_not_written() -> None:
    first, second = answered_order(), answered_order()
    orders, sidecar = FakeOrders(), FakeSidecar()
    orders.refused = {second.id}
    batch = {"e1": outbox_message(first), "e2": outbox_message(second, OTHER_MARKER)}
    answers = await released(orders, sidecar, batch)
    assert answers == {"e1": Delivery.SUCCESS, "e2": Delivery.RETRY}
    assert list(sidecar.markers) == [MARKER]


@pytest.mark.anyio
async def test_markers_not_written_ask_for_a_retry() -> None:
    order = answered_order()
    orders, sidecar = FakeOrders(), FakeSidecar()
    sidecar.failure = SidecarError("store down")
    assert await released(orders, sidecar, {"e1": outbox_message(order)}) == {"e1": Delivery.RETRY}


@pytest.mark.anyio
@pytest.mark.parametrize(
    "event",
    [
        {"id": "not-an-outbox-marker", "data": {}},
        {"data": {"not": "an order"}},
        {"id": MARKER, "data": "garbage"},
        "not a CloudEvent",
        None,
    ],
)
async def test_other_messages_are_acknowledged_untouched(event: Any) -> None:
    orders, sidecar = FakeOrders(), FakeSidecar()
    if isinstance(event, dict) and event.get("data") == {}:
        event["data"] = answered_order().model_dump(mode="json")
    assert await released(orders, sidecar, {"e1": event}) == {"e1": Delivery.SUCCESS}
    assert sidecar.markers == {} and orders.decisions == {} and orders.reads == []


@pytest.mark.anyio
async def test_answered_orders_are_released_before_the_batch_waits_for_its_newest() -> None:
    old, young = answered_order(), accepted_order()
    young = young.model_copy(update={"created_at": datetime.now(UTC) - timedelta(seconds=4.8)})
    orders, sidecar = FakeOrders(), FakeSidecar()
    batch = {"e1": outbox_message(young, OTHER_MARKER), "e2": outbox_message(old)}
    answers = await released(orders, sidecar, batch)  # young: due in 0.2 s (3 s + 2 s settle)
    assert answers == {"e1": Delivery.SUCCESS, "e2": Delivery.SUCCESS}
    assert orders.reads == [[old.id], [young.id]]


@pytest.mark.anyio
async def test_orders_falling_due_while_the_answered_ones_are_released_go_at_once() -> None:
    old, young = answered_order(), accepted_order()
    young = young.model_copy(update={"created_at": datetime.now(UTC) - timedelta(seconds=4.99)})
    orders, sidecar = FakeOrders(), FakeSidecar()
    orders.delay_seconds = 0.1  # the first read outlasts the young order's wait
    batch = {"e1": outbox_message(young, OTHER_MARKER), "e2": outbox_message(old)}
    answers = await released(orders, sidecar, batch)
    assert answers == {"e1": Delivery.SUCCESS, "e2": Delivery.SUCCESS}
    assert orders.reads == [[old.id], [young.id]]
