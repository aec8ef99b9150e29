"""accept_order's idempotency rules and the settling of commits in doubt: the real repository
over the sidecar's state API in memory."""

import asyncio
from collections.abc import Callable

import pytest

from app import voids
from app.acceptance import IdempotencyKeyReusedError, OrderNotAcceptedError, accept_order, commit
from app.voids import PendingVoids
from core.domain import Decision, Order, OrderRequest
from core.repository import OrderRepository, idempotency_key, order_key
from core.sidecar import SidecarError
from tests.factories import limit_order_body
from tests.unit.fakes import (
    MemorySidecar,
    decide,
    decision_of,
    order_of_key,
    stored_order,
)

pytestmark = pytest.mark.anyio


def request(**changes: object) -> OrderRequest:
    return OrderRequest.model_validate(limit_order_body(**changes))


def commits(sidecar: MemorySidecar) -> list[str]:
    """The order key of each commit tried, in order."""
    return [keys[0] for keys in sidecar.calls_to("execute_transaction")]


async def test_without_a_key_every_request_is_a_new_order(
    sidecar: MemorySidecar, orders: OrderRepository
) -> None:
    first = await accept_order(request(), None, orders, PendingVoids(orders))
    second = await accept_order(request(), None, orders, PendingVoids(orders))
    assert first.order.id != second.order.id
    assert not first.replayed and not second.replayed
    assert stored_order(sidecar, first.order.id) == first.order
    assert stored_order(sidecar, second.order.id) == second.order


async def test_same_key_and_body_returns_the_first_order(
    sidecar: MemorySidecar, orders: OrderRepository
) -> None:
    first = await accept_order(request(), "k", orders, PendingVoids(orders))
    again = await accept_order(request(), "k", orders, PendingVoids(orders))
    assert again.order == first.order
    assert again.replayed and not first.replayed
    assert commits(sidecar) == [order_key(first.order.id)]


async def test_same_key_with_another_body_is_refused(
    sidecar: MemorySidecar, orders: OrderRepository
) -> None:
    first = await accept_order(request(), "k", orders, PendingVoids(orders))
    with pytest.raises(IdempotencyKeyReusedError):
        await accept_order(request(quantity=2), "k", orders, PendingVoids(orders))
    assert commits(sidecar) == [order_key(first.order.id)]


async def test_retry_after_a_failed_commit_commits_the_reserved_order(
    sidecar: MemorySidecar, orders: OrderRepository
) -> None:
    sidecar.failing["execute_transaction"] = SidecarError("store down")
    with pytest.raises(OrderNotAcceptedError):
        await accept_order(request(), "k", orders, PendingVoids(orders))
    reserved = order_of_key(sidecar, "k")
    assert reserved is not None
    assert decision_of(sidecar, reserved.id) is Decision.VOID  # it may never be placed
    del sidecar.failing["execute_transaction"]
    retried = await accept_order(request(), "k", orders, PendingVoids(orders))
    assert retried.order == reserved
    assert stored_order(sidecar, reserved.id) == reserved
    assert commits(sidecar) == [order_key(reserved.id)] * 2  # no new order
    assert decision_of(sidecar, reserved.id) is None  # the retry's commit is the one to place


async def test_commit_that_lands_late_but_within_the_deadline_is_accepted(
    sidecar: MemorySidecar, orders: OrderRepository
) -> None:
    order = Order.accept(request())
    sidecar.lost_answers["execute_transaction"] = SidecarError("no answer in time")
    assert await commit(order, orders, PendingVoids(orders)) == order
    assert decision_of(sidecar, order.id) is None


async def test_commit_that_did_not_land_is_voided_so_it_is_never_placed(
    sidecar: MemorySidecar, orders: OrderRepository
) -> None:
    sidecar.failing["execute_transaction"] = SidecarError("store down")
    order = Order.accept(request())
    with pytest.raises(OrderNotAcceptedError):
        await commit(order, orders, PendingVoids(orders))
    assert decision_of(sidecar, order.id) is Decision.VOID


async def test_commit_whose_void_loses_to_the_placer_is_accepted(
    sidecar: MemorySidecar, orders: OrderRepository
) -> None:
    sidecar.failing["execute_transaction"] = SidecarError("no answer in time")
    order = Order.accept(request())
    decide(sidecar, order.id, Decision.PLACE)  # it landed, and the placer claimed it
    assert await commit(order, orders, PendingVoids(orders)) == order
    assert decision_of(sidecar, order.id) is Decision.PLACE


@pytest.fixture
def store_down(
    sidecar: MemorySidecar, orders: OrderRepository, monkeypatch: pytest.MonkeyPatch
) -> PendingVoids:
    """A store that refuses every call, and voids retried every 10 ms."""
    monkeypatch.setattr(voids, "RETRY_INTERVAL_SECONDS", 0.01)
    sidecar.failure = SidecarError("store down")
    return PendingVoids(orders)


async def wait_for(condition: Callable[[], bool]) -> None:
    """Gives the background retries up to a second to make `condition` hold."""
    for _ in range(100):
        if condition():
            return
        await asyncio.sleep(0.01)


async def test_void_that_cannot_be_written_is_retried_until_the_store_is_back(
    sidecar: MemorySidecar, orders: OrderRepository, store_down: PendingVoids
) -> None:
    pending = store_down
    order = Order.accept(request())
    with pytest.raises(OrderNotAcceptedError):
        await commit(order, orders, pending)
    assert len(pending) == 1 and decision_of(sidecar, order.id) is None
    await asyncio.sleep(0.05)
    assert len(pending) == 1  # still down: still pending
    sidecar.failure = None
    await wait_for(lambda: not pending)
    assert decision_of(sidecar, order.id) is Decision.VOID
    assert len(pending) == 0
    await pending.aclose()


async def test_while_the_store_is_known_down_orders_are_refused_without_a_commit(
    sidecar: MemorySidecar, orders: OrderRepository, store_down: PendingVoids
) -> None:
    pending = store_down
    with pytest.raises(OrderNotAcceptedError):
        await accept_order(request(), None, orders, pending)
    assert pending.store_unreachable and len(commits(sidecar)) == 1
    with pytest.raises(OrderNotAcceptedError):
        await accept_order(request(), "k", orders, pending)
    # Nothing tried: no commit, no reservation of the key, so no outbox message.
    assert len(commits(sidecar)) == 1
    assert [idempotency_key("k")] not in sidecar.calls_to("save_state")
    sidecar.failure = None
    await wait_for(lambda: not pending.store_unreachable)
    accepted = await accept_order(request(), None, orders, pending)
    assert stored_order(sidecar, accepted.order.id) == accepted.order
    await pending.aclose()
