"""Accepting an order: committed within ORDER_TIMEOUT_SECONDS, or certainly never placed; and
once only per Idempotency-Key."""

import asyncio
import logging
from dataclasses import dataclass

from app.voids import PendingVoids
from core.config import settings
from core.domain import Decision, Order, OrderRequest, OrderStatus
from core.repository import OrderRepository
from core.sidecar import SidecarError

logger = logging.getLogger(__name__)

# Of ORDER_TIMEOUT_SECONDS, the share the store calls may use: the rest is for reading the
# request and writing the answer, on an event loop that may be busy.
STORE_SHARE = 0.9
# Of what commit() gets, the share kept back to settle a commit that did not answer in time.
SETTLING_SHARE = 1 / 3


class IdempotencyKeyReusedError(Exception):
    """The key was used before with a different order."""


class OrderNotAcceptedError(Exception):
    """The order was not committed, and will never be placed."""


@dataclass(frozen=True)
class Acceptance:
    order: Order
    replayed: bool  # True when the key had been used: `order` is the first one


async def accept_order(
    request: OrderRequest,
    idempotency_key: str | None,
    orders: OrderRepository,
    voids: PendingVoids,
) -> Acceptance:
    """Stores a new order, its placement guaranteed, within ORDER_TIMEOUT_SECONDS. With an
    idempotency key already used for the same order, returns that order instead and creates
    nothing new."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.ORDER_TIMEOUT_SECONDS * STORE_SHARE
    order = Order.accept(request)
    if voids.store_unreachable:
        # The store is down (our last void failed; a retry every quarter second watches for
        # its return): answer at once, and leave no outbox message behind a commit that fails
        # (the runtime polls the store for ever for one; see placer/outbox_release.py).
        raise OrderNotAcceptedError(order.id)
    if idempotency_key is None:
        return Acceptance(await commit(order, orders, voids, deadline), replayed=False)
    try:
        # Safe to cut short: each step can be repeated by the client's retry with the key.
        async with asyncio.timeout_at(deadline):
            first, stored = await _order_of_key(request, idempotency_key, order, orders)
    except TimeoutError as error:
        raise SidecarError(f"Idempotency-Key not settled in time for {order.id}") from error
    if stored is not None:
        return Acceptance(stored, replayed=True)
    return Acceptance(await commit(first, orders, voids, deadline), replayed=first.id != order.id)


async def _order_of_key(
    request: OrderRequest, idempotency_key: str, order: Order, orders: OrderRepository
) -> tuple[Order, Order | None]:
    """The order the key stands for (`order`, when the key is new), and that order as stored
    when it is committed already."""
    first = await orders.reserve_idempotency_key(
        idempotency_key, order, settings.IDEMPOTENCY_RETENTION_SECONDS
    )
    if first.request() != request:
        raise IdempotencyKeyReusedError
    if first.id == order.id:
        return order, None
    stored = await orders.get(first.id)
    if stored is not None and stored.status is not OrderStatus.REJECTED:
        return first, stored
    # An earlier request reserved the key but got a 500 (or is still under way): commit the
    # reserved order now, lifting the void its 500 left. Committing it twice publishes it
    # twice; the placer and the exchange's client order ids make that harmless.
    await orders.lift_void(first.id)
    return first, None


async def commit(
    order: Order, orders: OrderRepository, voids: PendingVoids, deadline: float | None = None
) -> Order:
    """Commits `order` by `deadline` (event loop time; by default ORDER_TIMEOUT_SECONDS from
    now). When the store does not confirm in time, the commit is in doubt: it may still land.
    Then either the order is found committed (and returned), or it is voided, so that the
    placer never places it, and OrderNotAcceptedError is raised. A void that cannot be written
    in time is retried in the background."""
    now = asyncio.get_running_loop().time()
    budget = settings.ORDER_TIMEOUT_SECONDS * STORE_SHARE if deadline is None else deadline - now
    budget = max(budget, 0.01)
    settling = budget * SETTLING_SHARE
    try:
        await orders.create(order, timeout_seconds=budget - settling)
        return order
    except SidecarError as error:
        failure = error
    logger.warning("order %s: commit not confirmed (%s); settling it", order.id, failure)
    try:
        stored = await orders.get(order.id, timeout_seconds=settling / 2)
        if stored is not None:
            return stored
        # decide() makes up to two calls: together they fit in the other half.
        decided = await orders.decide(order.id, Decision.VOID, timeout_seconds=settling / 4)
    except SidecarError as error:
        logger.warning("order %s: not voided yet (%s); retrying in the background", order.id, error)
        voids.add(order.id)
        raise OrderNotAcceptedError(order.id) from failure
    if decided is Decision.PLACE:
        return order  # the commit landed since, and the placer has it: it will be placed
    raise OrderNotAcceptedError(order.id) from failure
