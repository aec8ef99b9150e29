"""Deliveries held while the exchange is down: the real placer and repository over the sidecar's
state API in memory, and an exchange the test takes down and brings back."""

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from core.config import settings
from core.domain import Order, OrderStatus
from core.repository import DEAD_LETTER_INDEX_KEY
from devstack.stack import COMPONENTS_DIR
from placer.breaker import CallResult, ExchangeBreaker
from placer.holding import DEADLINE_MARGIN_SECONDS, ExchangeGate, delivery_deadline
from placer.placement import Delivery, Placer
from placer.stock_exchange import OrderPlacementError, OrderRefusedError
from tests.factories import accepted_order
from tests.telemetry import registry_value
from tests.unit.fakes import MemorySidecar, repository, store_order, stored_order

LONG = 1000.0  # seconds: a probe interval or an age that a test never reaches


class Exchange:
    """Up or down as the test says; refuses the orders it is told to."""

    def __init__(self, *, up: bool = True) -> None:
        self.up = up
        self.refused: set[str] = set()
        self.calls: list[str] = []
        self.accepted: list[str] = []
        self._lock = threading.Lock()  # called from the placer's worker threads

    def __call__(self, order: Order) -> None:
        with self._lock:
            self.calls.append(order.id)
            if order.id in self.refused:
                raise OrderRefusedError(f"order {order.id} refused")
            if not self.up:
                raise OrderPlacementError("the exchange is down")
            self.accepted.append(order.id)


def gate(
    failures: int = 3, probe_seconds: float = 0.02, max_age_seconds: float = LONG
) -> ExchangeGate:
    return ExchangeGate(
        ExchangeBreaker(failures, probe_seconds), max_order_age_seconds=max_age_seconds
    )


def opened_gate(probe_seconds: float = 0.02, max_age_seconds: float = LONG) -> ExchangeGate:
    """A gate whose breaker is open: the exchange is known to be down."""
    breaker = ExchangeBreaker(1, probe_seconds)
    breaker.record(CallResult.FAILED, time.monotonic())
    down = ExchangeGate(breaker, max_order_age_seconds=max_age_seconds)
    assert down.exchange_down
    return down


def placer(sidecar: MemorySidecar, exchange: Exchange, exchange_gate: ExchangeGate) -> Placer:
    return Placer(
        repository(sidecar),
        exchange,
        concurrency=2,
        answer_deadline_seconds=3.0,
        gate=exchange_gate,
    )


def holding(*orders: Order) -> MemorySidecar:
    sidecar = MemorySidecar()
    for order in orders:
        store_order(sidecar, order)
    return sidecar


def event_for(order: Order) -> dict[str, Any]:
    return {"id": f"message-{order.id}", "data": order.model_dump(mode="json")}


async def until(condition: Callable[[], bool]) -> None:
    """Waits (at most a few seconds) for something the placer does in the background."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not within 5 s")


@pytest.mark.anyio
async def test_orders_held_while_the_exchange_is_down_are_placed_once_it_is_back() -> None:
    orders = [accepted_order(quantity=n) for n in range(1, 9)]
    sidecar, exchange, down = holding(*orders), Exchange(up=False), gate(failures=3)
    the_placer = placer(sidecar, exchange, down)
    deliveries = [asyncio.create_task(the_placer.place(event_for(o))) for o in orders]
    await until(lambda: down.exchange_down and len(exchange.calls) >= len(orders))
    await until(lambda: sum(d.done() for d in deliveries) == 2)
    exchange.up = True
    answers = await asyncio.gather(*deliveries)
    # The two failures before the breaker opened were retried, as any failure; every other
    # delivery waited for the exchange and was placed, without a retry.
    assert answers.count(Delivery.RETRY) == 2
    assert answers.count(Delivery.SUCCESS) == len(orders) - 2
    placed = [o.id for o in orders if stored_order(sidecar, o.id).status is OrderStatus.PLACED]  # type: ignore[union-attr]
    assert sorted(exchange.accepted) == sorted(placed)
    assert not down.exchange_down


@pytest.mark.anyio
async def test_while_the_exchange_is_down_only_probes_reach_it() -> None:
    order = accepted_order()
    sidecar, exchange, down = holding(order), Exchange(up=False), opened_gate()
    delivery = asyncio.create_task(placer(sidecar, exchange, down).place(event_for(order)))
    await until(lambda: len(exchange.calls) >= 3)  # probes, one per interval
    exchange.up = True
    assert await delivery is Delivery.SUCCESS
    assert exchange.accepted == [order.id]
    assert set(exchange.calls) == {order.id}


@pytest.mark.anyio
async def test_an_order_the_exchange_refuses_is_retried_and_does_not_stop_the_others() -> None:
    refused, other = accepted_order(quantity=1), accepted_order(quantity=2)
    sidecar, exchange, the_gate = holding(refused, other), Exchange(), gate(failures=2)
    exchange.refused.add(refused.id)
    the_placer = placer(sidecar, exchange, the_gate)
    for _ in range(3):
        assert await the_placer.place(event_for(refused)) is Delivery.RETRY
    assert not the_gate.exchange_down
    assert await the_placer.place(event_for(other)) is Delivery.SUCCESS


@pytest.mark.anyio
async def test_a_refused_probe_shows_the_exchange_is_up() -> None:
    order = accepted_order()
    sidecar, exchange, down = holding(order), Exchange(), opened_gate()
    exchange.refused.add(order.id)
    assert await placer(sidecar, exchange, down).place(event_for(order)) is Delivery.RETRY
    assert not down.exchange_down


@pytest.mark.anyio
async def test_a_redelivery_of_a_held_order_waits_for_the_first_and_is_not_placed_twice() -> None:
    order = accepted_order()
    sidecar, exchange, down = holding(order), Exchange(up=False), opened_gate()
    the_placer = placer(sidecar, exchange, down)
    repeated = registry_value("orders_repeated_deliveries_total")
    first = asyncio.create_task(the_placer.place(event_for(order)))
    await until(lambda: bool(exchange.calls))  # held, probing
    second = asyncio.create_task(the_placer.place(event_for(order)))
    await until(lambda: registry_value("orders_repeated_deliveries_total") == repeated + 1)
    exchange.up = True
    assert list(await asyncio.gather(first, second)) == [Delivery.SUCCESS, Delivery.SUCCESS]
    assert exchange.accepted == [order.id]


@pytest.mark.anyio
async def test_an_order_placed_elsewhere_during_its_hold_is_not_sent_again() -> None:
    order = accepted_order()
    sidecar, exchange, down = holding(order), Exchange(up=False), opened_gate(probe_seconds=0.2)
    delivery = asyncio.create_task(placer(sidecar, exchange, down).place(event_for(order)))
    await until(lambda: registry_value("orders_held") >= 1)
    # Another placer got the same message again and placed the order.
    store_order(sidecar, order.model_copy(update={"status": OrderStatus.PLACED}))
    assert await delivery is Delivery.SUCCESS
    assert exchange.calls == []
    assert down.exchange_down  # its turn to probe was handed on


@pytest.mark.anyio
async def test_a_held_order_that_reaches_the_maximum_age_is_dead_lettered_never_sent() -> None:
    order = accepted_order()
    sidecar, exchange = holding(order), Exchange(up=False)
    down = opened_gate(probe_seconds=LONG, max_age_seconds=0.3)
    the_placer = placer(sidecar, exchange, down)
    assert await the_placer.place(event_for(order)) is Delivery.DROP
    assert exchange.calls == []
    failed = stored_order(sidecar, order.id)
    assert failed is not None
    assert (failed.status, failed.failure_reason) == (
        OrderStatus.FAILED,
        "not placed within the maximum order age (0.3 s)",
    )
    # The dead letter keeps that reason, and lists the order for a re-drive.
    assert await the_placer.dead_letter(event_for(order)) is Delivery.SUCCESS
    dead = stored_order(sidecar, order.id)
    assert dead is not None
    assert dead.failure_reason == failed.failure_reason
    assert sidecar.value(DEAD_LETTER_INDEX_KEY) == [order.id]
    # A redelivery of its message is not dead-lettered again.
    assert await the_placer.place(event_for(order)) is Delivery.SUCCESS


@pytest.mark.anyio
async def test_an_order_past_the_maximum_age_is_never_sent_even_to_an_exchange_that_is_up() -> None:
    order = accepted_order().model_copy(update={"created_at": datetime.now(UTC) - timedelta(2)})
    sidecar, exchange = holding(order), Exchange()
    the_placer = placer(sidecar, exchange, gate(max_age_seconds=24 * 3600))
    assert await the_placer.place(event_for(order)) is Delivery.DROP
    assert exchange.calls == []


@pytest.mark.anyio
async def test_a_hold_ends_with_a_retry_before_the_deliverys_deadline() -> None:
    order = accepted_order()
    sidecar, exchange, down = holding(order), Exchange(up=False), opened_gate(probe_seconds=LONG)
    attempts = registry_value("orders_placement_attempts_total", outcome="exchange_down")
    with delivery_deadline(DEADLINE_MARGIN_SECONDS + 0.2):
        answer = await placer(sidecar, exchange, down).place(event_for(order))
    assert answer is Delivery.RETRY
    assert exchange.calls == []
    assert registry_value("orders_placement_attempts_total", outcome="exchange_down") == (
        attempts + 1
    )
    stored = stored_order(sidecar, order.id)
    assert stored is not None
    assert stored.status is OrderStatus.ACCEPTED


@pytest.mark.anyio
async def test_the_breakers_state_is_a_metric() -> None:
    down = opened_gate(probe_seconds=0.01)
    assert registry_value("orders_exchange_breaker_state", state="open") == 1
    assert registry_value("orders_exchange_breaker_state", state="closed") == 0
    admission = await down.admit(accepted_order())
    assert registry_value("orders_exchange_breaker_state", state="half_open") == 1
    assert down.record(admission, None, "an order") is CallResult.ACCEPTED
    assert registry_value("orders_exchange_breaker_state", state="closed") == 1


def test_the_shipped_policy_lets_a_hold_last_until_the_maximum_order_age() -> None:
    placement, *_ = yaml.safe_load_all((COMPONENTS_DIR / "common" / "resiliency.yaml").read_text())
    policies = placement["spec"]["policies"]
    attempt = policies["timeouts"]["placementAttempt"]
    assert float(attempt.removesuffix("s")) > settings.PLACER_MAX_ORDER_AGE_SECONDS
    # An order retried alone while the exchange goes down opens the breaker before its
    # retries run out, and is then held.
    assert (
        policies["retries"]["placementRetry"]["maxRetries"] + 1 > settings.PLACER_BREAKER_FAILURES
    )
