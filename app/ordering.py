"""Accepting an order, once per Idempotency-Key."""

from dataclasses import dataclass

from core.config import settings
from core.domain import Order, OrderRequest
from core.repository import OrderRepository


class IdempotencyKeyReusedError(Exception):
    """The key was used before with a different order."""


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
        await orders.create(order)
        return Acceptance(order, replayed=False)

    first = await orders.reserve_idempotency_key(
        idempotency_key, order, settings.IDEMPOTENCY_RETENTION_SECONDS
    )
    if first.request() != request:
        raise IdempotencyKeyReusedError
    if first.id != order.id:
        stored = await orders.get(first.id)
        if stored is not None:
            return Acceptance(stored, replayed=True)
    # Our reservation, or an earlier request that reserved the key but did not commit (it
    # failed, or is still under way): commit the reserved order. Committing it twice publishes
    # it twice; the placer and the exchange's client order ids make that harmless.
    await orders.create(first)
    return Acceptance(first, replayed=first.id != order.id)
