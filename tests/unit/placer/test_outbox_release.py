"""Releasing outbox messages whose commit failed: the real repository over the sidecar's state
API in memory."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.domain import Decision, Order
from core.repository import decision_key, order_key
from core.sidecar import SidecarError
from placer.outbox_release import MARKER_TTL_SECONDS, OutboxRelease
from placer.placement import Delivery
from tests.factories import accepted_order
from tests.unit.fakes import MemorySidecar, decide, decision_of, repository, store_order

pytestmark = pytest.mark.anyio

MARKER = "outbox-5b0f3c1e-2a4d-4f7e-9c61-0d1e2f3a4b5c"
OTHER_MARKER = "outbox-9d2e4f60-1b3c-4a5d-8e7f-6a5b4c3d2e1f"
MARKERS = "outbox-markers"


def answered_order() -> Order:
    """An order whose client has had its answer: the API's deadline is behind it."""
    return accepted_order().model_copy(
        update={"created_at": datetime.now(UTC) - timedelta(minutes=1)}
    )


def outbox_message(order: Order, marker: str = MARKER) -> dict[str, Any]:
    return {"id": marker, "data": order.model_dump(mode="json")}


async def released(sidecar: MemorySidecar, batch: dict[str, Any]) -> dict[str, Delivery]:
    release = OutboxRelease(repository(sidecar), sidecar, MARKERS, answer_deadline_seconds=3)
    return await release.release_failed(batch)


def markers(sidecar: MemorySidecar) -> dict[str, tuple[Any, int | None]]:
    """The markers written, with their value and time to live."""
    return {key: (e.value, e.ttl_seconds) for key, e in sidecar.stores[MARKERS].items()}


def orders_read(sidecar: MemorySidecar, *orders: Order) -> list[list[str]]:
    """Which of these orders each bulk read asked for (reads of none of them left out)."""
    reads = [
        [order.id for order in orders if order_key(order.id) in keys]
        for keys in sidecar.calls_to("get_bulk_state")
    ]
    return [read for read in reads if read]


async def test_committed_order_is_left_to_the_runtime() -> None:
    order, sidecar = answered_order(), MemorySidecar()
    store_order(sidecar, order)
    assert await released(sidecar, {"e1": outbox_message(order)}) == {"e1": Delivery.SUCCESS}
    assert markers(sidecar) == {}
    assert decision_of(sidecar, order.id) is None


async def test_order_never_committed_is_voided_and_its_marker_written() -> None:
    order, sidecar = answered_order(), MemorySidecar()
    assert await released(sidecar, {"e1": outbox_message(order)}) == {"e1": Delivery.SUCCESS}
    assert decision_of(sidecar, order.id) is Decision.VOID
    assert markers(sidecar) == {MARKER: ("0", MARKER_TTL_SECONDS)}


async def test_a_batch_is_read_once_and_only_its_failed_commits_released() -> None:
    committed, failed, sidecar = answered_order(), answered_order(), MemorySidecar()
    store_order(sidecar, committed)
    batch = {"e1": outbox_message(committed, OTHER_MARKER), "e2": outbox_message(failed)}
    answers = await released(sidecar, batch)
    assert answers == {"e1": Delivery.SUCCESS, "e2": Delivery.SUCCESS}
    assert orders_read(sidecar, committed, failed) == [[committed.id, failed.id]]
    assert decision_of(sidecar, committed.id) is None
    assert decision_of(sidecar, failed.id) is Decision.VOID
    assert list(markers(sidecar)) == [MARKER]


async def test_order_the_api_voided_already_is_released_without_a_new_decision() -> None:
    order, sidecar = answered_order(), MemorySidecar()
    decide(sidecar, order.id, Decision.VOID)
    assert await released(sidecar, {"e1": outbox_message(order)}) == {"e1": Delivery.SUCCESS}
    assert sidecar.calls_to("save_states") == []  # no decision written
    assert list(markers(sidecar)) == [MARKER]


async def test_unreadable_store_asks_for_a_retry_of_the_orders_and_writes_nothing() -> None:
    sidecar = MemorySidecar()
    sidecar.failure = SidecarError("store down")
    batch = {"e1": outbox_message(answered_order()), "e2": {"id": "not-an-outbox-marker"}}
    answers = await released(sidecar, batch)
    assert answers == {"e1": Delivery.RETRY, "e2": Delivery.SUCCESS}
    assert markers(sidecar) == {}


async def test_order_not_voided_is_retried_and_its_marker_not_written() -> None:
    first, second, sidecar = answered_order(), answered_order(), MemorySidecar()
    sidecar.unwritable = {decision_key(second.id)}
    batch = {"e1": outbox_message(first), "e2": outbox_message(second, OTHER_MARKER)}
    answers = await released(sidecar, batch)
    assert answers == {"e1": Delivery.SUCCESS, "e2": Delivery.RETRY}
    assert list(markers(sidecar)) == [MARKER]


async def test_markers_not_written_ask_for_a_retry() -> None:
    order, sidecar = answered_order(), MemorySidecar()
    sidecar.failing["save_in_transaction"] = SidecarError("store down")
    assert await released(sidecar, {"e1": outbox_message(order)}) == {"e1": Delivery.RETRY}


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
    sidecar = MemorySidecar()
    if isinstance(event, dict) and event.get("data") == {}:
        event["data"] = answered_order().model_dump(mode="json")
    assert await released(sidecar, {"e1": event}) == {"e1": Delivery.SUCCESS}
    assert sidecar.calls == []


async def test_answered_orders_are_released_before_the_batch_waits_for_its_newest() -> None:
    old, young, sidecar = answered_order(), accepted_order(), MemorySidecar()
    young = young.model_copy(update={"created_at": datetime.now(UTC) - timedelta(seconds=4.8)})
    batch = {"e1": outbox_message(young, OTHER_MARKER), "e2": outbox_message(old)}
    answers = await released(sidecar, batch)  # young: due in 0.2 s (3 s + 2 s settle)
    assert answers == {"e1": Delivery.SUCCESS, "e2": Delivery.SUCCESS}
    assert orders_read(sidecar, old, young) == [[old.id], [young.id]]


async def test_orders_falling_due_while_the_answered_ones_are_released_go_at_once() -> None:
    old, young, sidecar = answered_order(), accepted_order(), MemorySidecar()
    young = young.model_copy(update={"created_at": datetime.now(UTC) - timedelta(seconds=4.99)})
    sidecar.delay_seconds = 0.1  # releasing the old order outlasts the young order's wait
    batch = {"e1": outbox_message(young, OTHER_MARKER), "e2": outbox_message(old)}
    answers = await released(sidecar, batch)
    assert answers == {"e1": Delivery.SUCCESS, "e2": Delivery.SUCCESS}
    assert orders_read(sidecar, old, young) == [[old.id], [young.id]]
