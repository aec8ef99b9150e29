"""Accepting an order: committed within ORDER_TIMEOUT_SECONDS, or certainly never placed; and
once only per Idempotency-Key."""

import asyncio
import logging
from dataclasses import dataclass

from core.config import settings
from core.domain import Order, OrderRequest, OrderStatus
from core.repository import OrderRepository
from core.sidecar import SidecarError

logger = logging.getLogger(__name__)

# Of ORDER_TIMEOUT_SECONDS, what is kept back to settle a commit that did not answer in time.
SETTLING_SHARE = 1 / 3
VOID_RETRY_SECONDS = 30.0
VOID_RETRY_INTERVAL_SECONDS = 0.2

_void_retries: set[asyncio.Task[None]] = set()


class IdempotencyKeyReusedError(Exception):
    """The key was used before with a different order."""


class OrderNotAcceptedError(Exception):
    """The order was not committed, and will never be placed."""


@dataclass(frozen=True)
class Acceptance:
    order: Order
    replayed: bool  # True when the key had been used: `order` is the first one


async def accept_order(
    request: OrderRequest, idempotency_key: str | None, orders: OrderRepository
) -> Acceptance:
    """Stores a new order, its placement guaranteed. With an idempotency key already used for
    the same order, returns that order instead and creates nothing new."""
    order = Order.accept(request)
    if idempotency_key is None:
        return Acceptance(await commit(order, orders), replayed=False)

    first = await orders.reserve_idempotency_key(
        idempotency_key, order, settings.IDEMPOTENCY_RETENTION_SECONDS
    )
    if first.request() != request:
        raise IdempotencyKeyReusedError
    if first.id == order.id:
        return Acceptance(await commit(order, orders), replayed=False)
    stored = await orders.get(first.id)
    if stored is not None and stored.status is not OrderStatus.REJECTED:
        return Acceptance(stored, replayed=True)
    # An earlier request reserved the key but got a 500 (or is still under way): commit the
    # reserved order now, lifting the void its 500 left. Committing it twice publishes it
    # twice; the placer and the exchange's client order ids make that harmless.
    await orders.unvoid(first.id)
    return Acceptance(await commit(first, orders), replayed=True)


async def commit(order: Order, orders: OrderRepository) -> Order:
    """Commits `order`. When the store does not confirm in time, the commit is in doubt: it
    may still land. Then either the order is found committed (and returned), or it is voided,
    so that the placer never places it, and OrderNotAcceptedError is raised. All of it within
    ORDER_TIMEOUT_SECONDS."""
    settling = settings.ORDER_TIMEOUT_SECONDS * SETTLING_SHARE
    try:
        await orders.create(order, timeout_seconds=settings.ORDER_TIMEOUT_SECONDS - settling)
        return order
    except SidecarError as error:
        failure = error
    logger.warning("order %s: commit not confirmed (%s); settling it", order.id, failure)
    try:
        stored = await orders.get(order.id, timeout_seconds=settling / 2)
        if stored is not None:
            return stored
        await orders.void(order.id, timeout_seconds=settling / 2)
    except SidecarError as error:
        logger.error("order %s: not voided yet (%s); retrying in the background", order.id, error)
        _retry_void(order.id, orders)
    raise OrderNotAcceptedError(order.id) from failure


def _retry_void(order_id: str, orders: OrderRepository) -> None:
    task = asyncio.create_task(_void_until_done(order_id, orders))
    _void_retries.add(task)
    task.add_done_callback(_void_retries.discard)


async def _void_until_done(order_id: str, orders: OrderRepository) -> None:
    # The store is down now; the placer cannot read the order either until it is back, and
    # the outbox waits at least a second before publishing: voiding soon after wins the race.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + VOID_RETRY_SECONDS
    while loop.time() < deadline:
        await asyncio.sleep(VOID_RETRY_INTERVAL_SECONDS)
        try:
            await orders.void(order_id)
        except SidecarError:
            continue
        logger.info("order %s: voided", order_id)
        return
    logger.error("order %s: could not be voided in %s s", order_id, VOID_RETRY_SECONDS)
