"""The repository over the sidecar's state API in memory: first decisions, idempotency keys,
lists kept under optimistic concurrency, and reads when a bulk read drops keys without an
error, as Dapr's PostgreSQL store does when the read fails midway: a key is absent only once a
read of it alone says so."""

import asyncio

import pytest

from core.domain import Decision, Order, OrderEvent, OrderEventKind, OrderStatus
from core.repository import OrderRepository, decision_key, events_key, idempotency_key, order_key
from core.signing import SIGNATURE_FIELD, OrderSigner
from tests.factories import accepted_order
from tests.unit.fakes import (
    STORE,
    MemorySidecar,
    decide,
    decision_of,
    store_order,
)

pytestmark = pytest.mark.anyio


async def test_a_created_order_is_stored_without_its_outbox_projection(
    sidecar: MemorySidecar, orders: OrderRepository
) -> None:
    order = accepted_order()
    await orders.create(order)
    assert await orders.get(order.id) == order
    assert list(sidecar.stores[STORE]) == [order_key(order.id)]


async def test_with_a_signer_the_published_order_is_signed_and_the_stored_one_is_not(
    sidecar: MemorySidecar,
) -> None:
    order, signer = accepted_order(), OrderSigner("a shared key")
    await OrderRepository(sidecar, STORE, signer).create(order)
    [published] = sidecar.projections
    assert signer.verified(published)
    assert Order.model_validate(published) == order
    assert SIGNATURE_FIELD not in sidecar.value(order_key(order.id))


async def test_a_claim_wins_once_and_never_over_a_void(
    sidecar: MemorySidecar, orders: OrderRepository
) -> None:
    claimed, voided, unwritable = accepted_order(), accepted_order(), accepted_order()
    assert await orders.claim(claimed.id)
    assert not await orders.claim(claimed.id)
    decide(sidecar, voided.id, Decision.VOID)
    assert not await orders.claim(voided.id)
    assert decision_of(sidecar, voided.id) is Decision.VOID
    sidecar.unwritable = {decision_key(unwritable.id)}
    assert not await orders.claim(unwritable.id)  # the placer then reads what holds


async def test_the_first_decision_holds(sidecar: MemorySidecar, orders: OrderRepository) -> None:
    order = accepted_order()
    assert await orders.decide(order.id, Decision.PLACE) is Decision.PLACE
    assert await orders.decide(order.id, Decision.VOID) is Decision.PLACE
    assert decision_of(sidecar, order.id) is Decision.PLACE


async def test_decide_all_answers_the_decision_that_holds_or_none_where_unwritten(
    sidecar: MemorySidecar, orders: OrderRepository
) -> None:
    placed, fresh, refused = accepted_order(), accepted_order(), accepted_order()
    decide(sidecar, placed.id, Decision.PLACE)
    sidecar.unwritable = {decision_key(refused.id)}
    held = await orders.decide_all([placed.id, fresh.id, refused.id], Decision.VOID)
    assert held == {placed.id: Decision.PLACE, fresh.id: Decision.VOID, refused.id: None}


async def test_lifting_a_void_leaves_a_claim(
    sidecar: MemorySidecar, orders: OrderRepository
) -> None:
    voided, claimed = accepted_order(), accepted_order()
    decide(sidecar, voided.id, Decision.VOID)
    decide(sidecar, claimed.id, Decision.PLACE)
    await orders.lift_void(voided.id)
    await orders.lift_void(claimed.id)
    assert decision_of(sidecar, voided.id) is None
    assert decision_of(sidecar, claimed.id) is Decision.PLACE


async def test_an_idempotency_key_keeps_its_first_order_and_expires(
    sidecar: MemorySidecar, orders: OrderRepository
) -> None:
    first, second = accepted_order(), accepted_order()
    assert await orders.reserve_idempotency_key("k", first, 60) == first
    assert await orders.reserve_idempotency_key("k", second, 60) == first
    assert sidecar.stores[STORE][idempotency_key("k")].ttl_seconds == 60


async def test_events_recorded_at_once_are_all_kept(
    sidecar: MemorySidecar, orders: OrderRepository
) -> None:
    order = accepted_order()
    sidecar.delay_seconds = 0.01  # both read the list before either writes it
    kinds = [OrderEventKind.ATTEMPT_FAILED, OrderEventKind.PLACED]
    await asyncio.gather(*(orders.record_event(order.id, OrderEvent(kind=k)) for k in kinds))
    assert len(sidecar.calls_to("save_state")) == 3  # the write that lost its race, again
    assert sorted(event["kind"] for event in sidecar.value(events_key(order.id))) == kinds


async def test_history_lists_recorded_and_settling_events_in_time_order(
    sidecar: MemorySidecar, orders: OrderRepository
) -> None:
    order = accepted_order()
    store_order(sidecar, order)
    await orders.record_event(order.id, OrderEvent(kind=OrderEventKind.ATTEMPT_FAILED))
    await orders.settle(order.model_copy(update={"status": OrderStatus.PLACED}))
    await orders.record_event(order.id, OrderEvent(kind=OrderEventKind.DEAD_LETTERED))
    kinds = [event.kind for event in await orders.events(order)]
    assert kinds == [
        OrderEventKind.ACCEPTED,
        OrderEventKind.ATTEMPT_FAILED,
        OrderEventKind.PLACED,
        OrderEventKind.DEAD_LETTERED,
    ]
    assert (await orders.get(order.id) or order).status is OrderStatus.PLACED


async def test_order_dropped_by_a_bulk_read_is_found_for_placement(
    sidecar: MemorySidecar, orders: OrderRepository
) -> None:
    order = accepted_order()
    store_order(sidecar, order)
    decide(sidecar, order.id, Decision.PLACE)
    sidecar.truncating_bulk_reads = True
    assert await orders.get_for_placement(order.id) == (order, Decision.PLACE)


async def test_order_dropped_by_a_bulk_read_is_not_taken_for_uncommitted(
    sidecar: MemorySidecar, orders: OrderRepository
) -> None:
    stored, missing = accepted_order(), accepted_order()
    store_order(sidecar, stored)
    sidecar.truncating_bulk_reads = True
    assert await orders.find_uncommitted([stored.id, missing.id]) == {missing.id: None}
