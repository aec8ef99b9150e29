"""What the placer answers its sidecar: the real repository over the sidecar's state API in
memory, and a fake exchange."""

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from core.domain import Decision, Order, OrderEventKind, OrderStatus
from core.repository import DEAD_LETTER_INDEX_KEY, outcome_key
from core.sidecar import SidecarError
from core.signing import OrderSigner
from placer import placement
from placer.placement import DEAD_LETTER_REASON, Delivery, Placer
from placer.stock_exchange import OrderPlacementError, OrderRefusedError
from tests.factories import accepted_order
from tests.telemetry import registry_value
from tests.unit.fakes import (
    MemorySidecar,
    decide,
    decision_of,
    repository,
    store_order,
    stored_order,
)


def as_stored(sidecar: MemorySidecar, order: Order) -> Order:
    stored = stored_order(sidecar, order.id)
    assert stored is not None
    return stored


async def recorded(sidecar: MemorySidecar, order: Order) -> list[OrderEventKind]:
    """The kinds of the events recorded for the order, oldest first, as its history reads."""
    accepted, *events = await repository(sidecar).events(order)
    assert accepted.kind is OrderEventKind.ACCEPTED
    return [event.kind for event in events]


def dead_lettered(sidecar: MemorySidecar) -> list[str]:
    return list(sidecar.value(DEAD_LETTER_INDEX_KEY) or [])


def holding(*orders: Order) -> MemorySidecar:
    sidecar = MemorySidecar()
    for order in orders:
        store_order(sidecar, order)
    return sidecar


class FakeExchange:
    def __init__(self, failures: int = 0) -> None:
        self.calls: list[str] = []
        self.failures = failures

    def __call__(self, order: Order) -> None:
        self.calls.append(order.id)
        if self.failures:
            self.failures -= 1
            raise OrderPlacementError("exchange down")


def event_for(order: Order) -> dict[str, Any]:
    return {"id": "outbox-1", "data": order.model_dump(mode="json")}


ANSWER_DEADLINE_SECONDS = 3.0


SIGNER = OrderSigner("the key both apps share")


def signed_event_for(order: Order, signer: OrderSigner = SIGNER) -> dict[str, Any]:
    """The event as the API publishes it with a signing key."""
    return {"id": "outbox-1", "data": signer.signed(order.model_dump(mode="json"))}


# What the store holds decides, whether the event is signed or not.
EVENTS = pytest.mark.parametrize(
    "event_of", [event_for, signed_event_for], ids=["unsigned", "signed"]
)


def placer(
    sidecar: MemorySidecar,
    exchange: FakeExchange,
    grace_seconds: float = 0.2,
    retries_at_once: int = 0,
) -> Placer:
    return Placer(
        repository(sidecar),
        exchange,
        concurrency=2,
        answer_deadline_seconds=ANSWER_DEADLINE_SECONDS,
        void_grace_seconds=grace_seconds,
        retries_at_once=retries_at_once,
        signer=SIGNER,
    )


def late_order() -> Order:
    """An order older than the API's deadline: its client may have got a 500."""
    created_at = datetime.now(UTC) - timedelta(seconds=ANSWER_DEADLINE_SECONDS + 1)
    return accepted_order().model_copy(update={"created_at": created_at})


@pytest.mark.anyio
async def test_accepted_order_is_placed_and_marked_placed() -> None:
    order = accepted_order()
    sidecar, exchange = holding(order), FakeExchange()
    assert await placer(sidecar, exchange).place(event_for(order)) is Delivery.SUCCESS
    assert exchange.calls == [order.id]
    assert as_stored(sidecar, order).status is OrderStatus.PLACED
    assert await recorded(sidecar, order) == [OrderEventKind.PLACED]
    assert decision_of(sidecar, order.id) is Decision.PLACE  # claimed: a void now loses


@pytest.mark.anyio
async def test_an_unsigned_order_takes_three_calls_to_the_store() -> None:
    order = accepted_order()
    sidecar = holding(order)
    assert await placer(sidecar, FakeExchange()).place(event_for(order)) is Delivery.SUCCESS
    # Read the order and its decision; claim it; its status with its event.
    calls = [method for method, _ in sidecar.calls]
    assert calls == ["get_bulk_state", "save_state", "execute_transaction"]


@pytest.mark.anyio
async def test_a_signed_order_is_claimed_and_placed_without_a_read() -> None:
    order = accepted_order()
    sidecar, exchange = holding(order), FakeExchange()
    assert await placer(sidecar, exchange).place(signed_event_for(order)) is Delivery.SUCCESS
    # Claim it; its status with its event.
    assert [method for method, _ in sidecar.calls] == ["save_state", "execute_transaction"]
    assert exchange.calls == [order.id]
    assert as_stored(sidecar, order).status is OrderStatus.PLACED
    assert await recorded(sidecar, order) == [OrderEventKind.PLACED]


@pytest.mark.anyio
async def test_a_signed_redelivery_of_a_placed_order_does_not_reach_the_exchange() -> None:
    order = accepted_order()
    sidecar, exchange = holding(order), FakeExchange()
    for _ in range(2):
        assert await placer(sidecar, exchange).place(signed_event_for(order)) is Delivery.SUCCESS
    assert exchange.calls == [order.id]  # the second claim lost: the store said "placed"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "event",
    [
        signed_event_for(accepted_order(), OrderSigner("another key")),
        {"id": "e", "data": {**signed_event_for(accepted_order())["data"], "quantity": 99}},
        event_for(accepted_order()),
    ],
    ids=["another key", "changed after signing", "unsigned"],
)
async def test_an_order_not_signed_by_the_api_is_read_and_dropped_when_not_stored(
    event: dict[str, Any],
) -> None:
    sidecar, exchange = MemorySidecar(), FakeExchange()
    assert await placer(sidecar, exchange).place(event) is Delivery.DROP
    assert exchange.calls == []
    assert sidecar.calls_to("save_state") == []  # not even claimed


@pytest.mark.anyio
async def test_a_placed_order_whose_event_cannot_be_written_stays_accepted() -> None:
    order = accepted_order()
    sidecar, exchange = holding(order), FakeExchange()
    sidecar.unwritable = {outcome_key(order.id, OrderEventKind.PLACED)}
    assert await placer(sidecar, exchange).place(event_for(order)) is Delivery.RETRY
    assert as_stored(sidecar, order).status is OrderStatus.ACCEPTED
    sidecar.unwritable = set()
    assert await placer(sidecar, exchange).place(event_for(order)) is Delivery.SUCCESS
    assert exchange.calls == [order.id, order.id]  # the exchange knows it by its id
    assert await recorded(sidecar, order) == [OrderEventKind.PLACED]


@pytest.mark.anyio
async def test_exchange_failure_asks_for_a_retry_and_keeps_the_order_accepted() -> None:
    order = accepted_order()
    sidecar, exchange = holding(order), FakeExchange(failures=1)
    assert await placer(sidecar, exchange).place(event_for(order)) is Delivery.RETRY
    assert as_stored(sidecar, order).status is OrderStatus.ACCEPTED
    assert await placer(sidecar, exchange).place(event_for(order)) is Delivery.SUCCESS
    assert exchange.calls == [order.id, order.id]
    assert await recorded(sidecar, order) == [OrderEventKind.ATTEMPT_FAILED, OrderEventKind.PLACED]


@pytest.mark.anyio
async def test_a_failed_exchange_call_is_an_error_span_with_its_exception(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    monkeypatch.setattr(placement, "tracer", provider.get_tracer(__name__))
    order = accepted_order()
    sidecar = holding(order)
    assert await placer(sidecar, FakeExchange(failures=1)).place(event_for(order)) is Delivery.RETRY
    [span] = spans.get_finished_spans()
    assert span.name == "exchange place_order"
    assert span.status.status_code is StatusCode.ERROR
    [event] = span.events
    assert event.name == "exception"
    assert dict(event.attributes or {}) == {
        "exception.type": "OrderPlacementError",
        "exception.message": "exchange down",
    }


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("failures", "answer", "status"),
    [(2, Delivery.SUCCESS, OrderStatus.PLACED), (3, Delivery.RETRY, OrderStatus.ACCEPTED)],
)
async def test_failed_calls_are_repeated_at_once_before_a_retry(
    failures: int, answer: Delivery, status: OrderStatus
) -> None:
    order = accepted_order()
    sidecar, exchange = holding(order), FakeExchange(failures=failures)
    quick = placer(sidecar, exchange, retries_at_once=2)
    assert await quick.place(event_for(order)) is answer
    assert exchange.calls == [order.id] * 3
    assert as_stored(sidecar, order).status is status
    assert (await recorded(sidecar, order)).count(OrderEventKind.ATTEMPT_FAILED) == failures


@pytest.mark.anyio
async def test_a_refused_order_is_not_repeated_at_once() -> None:
    order = accepted_order()
    sidecar = holding(order)
    calls: list[str] = []

    def refusing(refused: Order) -> None:
        calls.append(refused.id)
        raise OrderRefusedError("refused")

    quick = Placer(repository(sidecar), refusing, concurrency=2,
                   answer_deadline_seconds=ANSWER_DEADLINE_SECONDS, retries_at_once=2)  # fmt: skip
    assert await quick.place(event_for(order)) is Delivery.RETRY
    assert calls == [order.id]


@pytest.mark.anyio
async def test_repeated_delivery_of_a_placed_order_does_not_reach_the_exchange() -> None:
    order = accepted_order().model_copy(update={"status": OrderStatus.PLACED})
    sidecar, exchange = holding(order), FakeExchange()
    assert await placer(sidecar, exchange).place(event_for(order)) is Delivery.SUCCESS
    assert exchange.calls == []


@pytest.mark.anyio
async def test_unreadable_store_asks_for_a_retry_before_calling_the_exchange() -> None:
    order = accepted_order()
    sidecar, exchange = holding(order), FakeExchange()
    sidecar.failure = SidecarError("store down")
    assert await placer(sidecar, exchange).place(event_for(order)) is Delivery.RETRY
    assert exchange.calls == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    "event", [{"data": {"not": "an order"}}, {"data": "garbage"}, {}, {"data": None}]
)
async def test_poison_message_is_dropped_to_the_dead_letter_topic(event: dict[str, Any]) -> None:
    exchange = FakeExchange()
    assert await placer(MemorySidecar(), exchange).place(event) is Delivery.DROP
    assert exchange.calls == []


@pytest.mark.anyio
async def test_order_missing_from_the_store_is_dropped() -> None:
    exchange = FakeExchange()
    assert (
        await placer(MemorySidecar(), exchange).place(event_for(accepted_order())) is Delivery.DROP
    )
    assert exchange.calls == []


@pytest.mark.anyio
async def test_dead_lettered_order_is_marked_failed_and_listed_for_redrive() -> None:
    order = accepted_order()
    sidecar = holding(order)
    assert await placer(sidecar, FakeExchange()).dead_letter(event_for(order)) is Delivery.SUCCESS
    assert as_stored(sidecar, order).status is OrderStatus.FAILED
    assert as_stored(sidecar, order).failure_reason == DEAD_LETTER_REASON
    assert dead_lettered(sidecar) == [order.id]
    assert await recorded(sidecar, order) == [OrderEventKind.DEAD_LETTERED]


@pytest.mark.anyio
async def test_dead_letter_of_a_placed_order_changes_nothing() -> None:
    order = accepted_order().model_copy(update={"status": OrderStatus.PLACED})
    sidecar = holding(order)
    assert await placer(sidecar, FakeExchange()).dead_letter(event_for(order)) is Delivery.SUCCESS
    assert as_stored(sidecar, order).status is OrderStatus.PLACED
    assert dead_lettered(sidecar) == []


@pytest.mark.anyio
@EVENTS
async def test_voided_order_is_rejected_and_never_reaches_the_exchange(
    event_of: Callable[[Order], dict[str, Any]],
) -> None:
    order = accepted_order()
    sidecar, exchange = holding(order), FakeExchange()
    decide(sidecar, order.id, Decision.VOID)
    assert await placer(sidecar, exchange).place(event_of(order)) is Delivery.SUCCESS
    assert exchange.calls == []
    assert as_stored(sidecar, order).status is OrderStatus.REJECTED
    assert await recorded(sidecar, order) == [OrderEventKind.REJECTED]
    # A redelivery changes nothing, and a dead letter does not make it re-drivable.
    assert await placer(sidecar, exchange).place(event_of(order)) is Delivery.SUCCESS
    assert await placer(sidecar, exchange).dead_letter(event_of(order)) is Delivery.SUCCESS
    assert dead_lettered(sidecar) == []
    assert exchange.calls == []


@pytest.mark.anyio
@EVENTS
async def test_late_order_voided_during_the_grace_period_is_rejected(
    event_of: Callable[[Order], dict[str, Any]],
) -> None:
    order = late_order()
    sidecar, exchange = holding(order), FakeExchange()
    delivery = asyncio.create_task(placer(sidecar, exchange).place(event_of(order)))
    await asyncio.sleep(0.05)  # the API's background void lands while the placer waits
    assert not delivery.done()
    decide(sidecar, order.id, Decision.VOID)
    assert await delivery is Delivery.SUCCESS
    assert exchange.calls == []
    assert as_stored(sidecar, order).status is OrderStatus.REJECTED


@pytest.mark.anyio
async def test_late_order_is_placed_after_the_grace_period_without_a_void() -> None:
    order = late_order()
    sidecar, exchange = holding(order), FakeExchange()
    assert await placer(sidecar, exchange).place(event_for(order)) is Delivery.SUCCESS
    assert exchange.calls == [order.id]
    assert decision_of(sidecar, order.id) is Decision.PLACE


@pytest.mark.anyio
@EVENTS
async def test_claimed_order_is_placed_on_redelivery_without_waiting_again(
    event_of: Callable[[Order], dict[str, Any]],
) -> None:
    order = late_order()
    sidecar, exchange = holding(order), FakeExchange()
    decide(sidecar, order.id, Decision.PLACE)  # claimed by an earlier delivery
    # A grace period this long would time the test out: a claimed order must not wait.
    slow_grace = placer(sidecar, exchange, grace_seconds=3600)
    assert await slow_grace.place(event_of(order)) is Delivery.SUCCESS
    assert exchange.calls == [order.id]


@pytest.mark.anyio
async def test_each_outcome_is_counted_and_placements_timed() -> None:
    order = accepted_order()
    sidecar, exchange = holding(order), FakeExchange(failures=1)
    attempts = "orders_placement_attempts_total"
    before = {
        "failed": registry_value(attempts, outcome="exchange_failed"),
        "placed": registry_value(attempts, outcome="placed"),
        "orders": registry_value("orders_placed_total"),
        "waits": registry_value("orders_accept_to_placed_seconds_count"),
        "calls": registry_value("orders_exchange_call_duration_seconds_count", result="failed"),
    }
    the_placer = placer(sidecar, exchange)
    assert await the_placer.place(event_for(order)) is Delivery.RETRY
    assert await the_placer.place(event_for(order)) is Delivery.SUCCESS
    assert registry_value(attempts, outcome="exchange_failed") == before["failed"] + 1
    assert registry_value(attempts, outcome="placed") == before["placed"] + 1
    assert registry_value("orders_placed_total") == before["orders"] + 1
    assert registry_value("orders_accept_to_placed_seconds_count") == before["waits"] + 1
    calls = registry_value("orders_exchange_call_duration_seconds_count", result="failed")
    assert calls == before["calls"] + 1
    assert registry_value("orders_in_flight") == 0


@pytest.mark.anyio
async def test_a_dead_letter_is_counted_once_marked_failed() -> None:
    order = accepted_order()
    before = registry_value("orders_dead_lettered_total")
    assert await placer(holding(order), FakeExchange()).dead_letter(event_for(order)) is (
        Delivery.SUCCESS
    )
    assert registry_value("orders_dead_lettered_total") == before + 1
