"""accept_order's idempotency rules and the settling of commits in doubt, with an in-memory
repository."""

import asyncio
from collections.abc import Callable

import pytest

from app import voids
from app.acceptance import IdempotencyKeyReusedError, OrderNotAcceptedError, accept_order, commit
from app.voids import PendingVoids
from core.domain import Decision, Order, OrderRequest
from core.sidecar import SidecarError
from tests.factories import limit_order_body
from tests.unit.fakes import MemoryOrders


def request(**changes: object) -> OrderRequest:
    return OrderRequest.model_validate(limit_order_body(**changes))


@pytest.mark.anyio
async def test_without_a_key_every_request_is_a_new_order() -> None:
    orders = MemoryOrders()
    first = await accept_order(request(), None, orders, PendingVoids(orders))  # type: ignore[arg-type]
    second = await accept_order(request(), None, orders, PendingVoids(orders))  # type: ignore[arg-type]
    assert first.order.id != second.order.id
    assert not first.replayed and not second.replayed
    assert len(orders.saved) == 2


@pytest.mark.anyio
async def test_same_key_and_body_returns_the_first_order() -> None:
    orders = MemoryOrders()
    first = await accept_order(request(), "k", orders, PendingVoids(orders))  # type: ignore[arg-type]
    again = await accept_order(request(), "k", orders, PendingVoids(orders))  # type: ignore[arg-type]
    assert again.order == first.order
    assert again.replayed and not first.replayed
    assert orders.creates == 1


@pytest.mark.anyio
async def test_same_key_with_another_body_is_refused() -> None:
    orders = MemoryOrders()
    await accept_order(request(), "k", orders, PendingVoids(orders))  # type: ignore[arg-type]
    with pytest.raises(IdempotencyKeyReusedError):
        await accept_order(request(quantity=2), "k", orders, PendingVoids(orders))  # type: ignore[arg-type]
    assert len(orders.saved) == 1


@pytest.mark.anyio
async def test_retry_after_a_failed_commit_commits_the_reserved_order() -> None:
    orders = MemoryOrders()
    orders.create_failure = SidecarError("store down")
    with pytest.raises(OrderNotAcceptedError):
        await accept_order(request(), "k", orders, PendingVoids(orders))  # type: ignore[arg-type]
    assert orders.voided == {orders.keys["k"].id}  # the failed commit may never be placed
    orders.create_failure = None
    retried = await accept_order(request(), "k", orders, PendingVoids(orders))  # type: ignore[arg-type]
    assert retried.order == orders.keys["k"]
    assert list(orders.saved) == [retried.order.id]
    assert orders.voided == set()  # the retry's commit is the one to place


@pytest.mark.anyio
async def test_commit_that_lands_late_but_within_the_deadline_is_accepted() -> None:
    orders = MemoryOrders()
    order = Order.accept(request())

    async def slow_create(order: Order, timeout_seconds: float | None = None) -> None:
        orders.saved[order.id] = order  # it lands, but the answer is lost
        raise SidecarError("no answer in time")

    orders.create = slow_create  # type: ignore[method-assign]
    assert await commit(order, orders, PendingVoids(orders)) == order  # type: ignore[arg-type]
    assert orders.voided == set()


@pytest.mark.anyio
async def test_commit_that_did_not_land_is_voided_so_it_is_never_placed() -> None:
    orders = MemoryOrders()
    orders.create_failure = SidecarError("store down")
    order = Order.accept(request())
    with pytest.raises(OrderNotAcceptedError):
        await commit(order, orders, PendingVoids(orders))  # type: ignore[arg-type]
    assert orders.voided == {order.id}


@pytest.mark.anyio
async def test_commit_whose_void_loses_to_the_placer_is_accepted() -> None:
    orders = MemoryOrders()
    orders.create_failure = SidecarError("no answer in time")
    order = Order.accept(request())
    orders.decisions[order.id] = Decision.PLACE  # it landed, and the placer claimed it
    assert await commit(order, orders, PendingVoids(orders)) == order  # type: ignore[arg-type]


@pytest.fixture
def store_down(monkeypatch: pytest.MonkeyPatch) -> tuple[MemoryOrders, PendingVoids]:
    """A store that refuses every call, and voids retried every 10 ms."""
    monkeypatch.setattr(voids, "RETRY_INTERVAL_SECONDS", 0.01)
    orders = MemoryOrders()
    orders.failure = SidecarError("store down")
    return orders, PendingVoids(orders)  # type: ignore[arg-type]


async def wait_for(condition: Callable[[], bool]) -> None:
    """Gives the background retries up to a second to make `condition` hold."""
    for _ in range(100):
        if condition():
            return
        await asyncio.sleep(0.01)


@pytest.mark.anyio
async def test_void_that_cannot_be_written_is_retried_until_the_store_is_back(
    store_down: tuple[MemoryOrders, PendingVoids],
) -> None:
    orders, pending = store_down
    order = Order.accept(request())
    with pytest.raises(OrderNotAcceptedError):
        await commit(order, orders, pending)  # type: ignore[arg-type]
    assert len(pending) == 1 and orders.voided == set()
    await asyncio.sleep(0.05)
    assert len(pending) == 1  # still down: still pending
    orders.failure = None
    await wait_for(lambda: not pending)
    assert orders.voided == {order.id}
    assert len(pending) == 0
    await pending.aclose()


@pytest.mark.anyio
async def test_while_the_store_is_known_down_orders_are_refused_without_a_commit(
    store_down: tuple[MemoryOrders, PendingVoids],
) -> None:
    orders, pending = store_down
    with pytest.raises(OrderNotAcceptedError):
        await accept_order(request(), None, orders, pending)  # type: ignore[arg-type]
    assert pending.store_unreachable and orders.creates == 1
    with pytest.raises(OrderNotAcceptedError):
        await accept_order(request(), "k", orders, pending)  # type: ignore[arg-type]
    assert orders.creates == 1 and orders.keys == {}  # nothing tried: no outbox message
    orders.failure = None
    await wait_for(lambda: not pending.store_unreachable)
    accepted = await accept_order(request(), None, orders, pending)  # type: ignore[arg-type]
    assert accepted.order.id in orders.saved
    await pending.aclose()
