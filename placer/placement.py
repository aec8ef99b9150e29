"""What the placer does with one delivery of an order, and with a dead-lettered one.

Each function returns the answer for the sidecar: SUCCESS (done), RETRY (the sidecar retries
under the resiliency policy, then dead-letters) or DROP (never retry; the sidecar dead-letters).
"""

import logging
from collections.abc import Callable
from enum import StrEnum

import anyio
from pydantic import ValidationError

from core.domain import Order, OrderEvent, OrderEventKind, OrderStatus
from core.repository import OrderRepository
from core.sidecar import SidecarError

logger = logging.getLogger(__name__)

DEAD_LETTER_REASON = "placement retries exhausted"

ExchangeCall = Callable[[Order], None]


class Delivery(StrEnum):
    SUCCESS = "SUCCESS"
    RETRY = "RETRY"
    DROP = "DROP"


def order_from_event(event: dict[str, object]) -> Order | None:
    """The order carried by a CloudEvent, or None for a message that is not an order."""
    try:
        return Order.model_validate(event.get("data"))
    except ValidationError as error:
        logger.error("event %s carries no valid order: %s", event.get("id"), error)
        return None


class Placer:
    def __init__(
        self, orders: OrderRepository, place_order: ExchangeCall, concurrency: int
    ) -> None:
        self._orders = orders
        self._place_order = place_order
        # The exchange client blocks: run it in threads, at most `concurrency` at once.
        self._exchange_slots = anyio.CapacityLimiter(concurrency)

    async def place(self, event: dict[str, object]) -> Delivery:
        order = order_from_event(event)
        if order is None:
            return Delivery.DROP
        try:
            stored, voided = await self._orders.get_for_placement(order.id)
        except SidecarError as error:
            logger.warning("order %s: cannot read its state, retrying: %s", order.id, error)
            return Delivery.RETRY
        if stored is None:
            logger.error("order %s: not in the store, dropping the event", order.id)
            return Delivery.DROP
        if stored.status in (OrderStatus.PLACED, OrderStatus.REJECTED):
            logger.info("order %s: already %s, skipping the delivery", order.id, stored.status)
            return Delivery.SUCCESS
        if voided:
            return await self._reject(stored)
        return await self._place(stored)

    async def _reject(self, order: Order) -> Delivery:
        """An order committed after its client was told it failed: it is never placed."""
        try:
            await self._orders.save(order.model_copy(update={"status": OrderStatus.REJECTED}))
        except SidecarError as error:
            logger.warning("order %s: cannot mark it rejected, retrying: %s", order.id, error)
            return Delivery.RETRY
        await self._record(order, OrderEventKind.REJECTED, "answered 500 before it committed")
        logger.warning("order %s: committed after its client got a 500; not placed", order.id)
        return Delivery.SUCCESS

    async def _place(self, order: Order) -> Delivery:
        try:
            await anyio.to_thread.run_sync(self._place_order, order, limiter=self._exchange_slots)
        except Exception as error:  # noqa: BLE001 - any exchange failure is retried
            logger.warning("order %s: the exchange failed, retrying: %r", order.id, error)
            await self._record(order, OrderEventKind.ATTEMPT_FAILED, repr(error))
            return Delivery.RETRY
        try:
            # History first: an order marked placed always has its "placed" event.
            await self._orders.record_event(order.id, OrderEvent(kind=OrderEventKind.PLACED))
            await self._orders.save(order.model_copy(update={"status": OrderStatus.PLACED}))
        except SidecarError as error:
            # The exchange has the order; the retry finds it there by its client order id.
            logger.warning("order %s: placed, but its status was not saved: %s", order.id, error)
            return Delivery.RETRY
        logger.info("order %s: placed", order.id)
        return Delivery.SUCCESS

    async def _record(self, order: Order, kind: OrderEventKind, detail: str) -> None:
        """Adds to the order's history where losing the entry loses nothing else."""
        try:
            await self._orders.record_event(order.id, OrderEvent(kind=kind, detail=detail))
        except SidecarError as error:
            logger.warning("order %s: %s not recorded: %s", order.id, kind.value, error)

    async def dead_letter(self, event: dict[str, object]) -> Delivery:
        """Marks a dead-lettered order failed and lists it for a re-drive."""
        order = order_from_event(event)
        if order is None:
            return Delivery.SUCCESS  # nothing to mark: the message was never an order
        try:
            stored = await self._orders.get(order.id)
            if stored is None or stored.status in (OrderStatus.PLACED, OrderStatus.REJECTED):
                return Delivery.SUCCESS
            failed = stored.model_copy(
                update={"status": OrderStatus.FAILED, "failure_reason": DEAD_LETTER_REASON}
            )
            await self._orders.save(failed)
            await self._orders.add_dead_lettered(order.id)
            dead_lettered = OrderEvent(kind=OrderEventKind.DEAD_LETTERED, detail=DEAD_LETTER_REASON)
            await self._orders.record_event(order.id, dead_lettered)
        except SidecarError as error:
            logger.warning("order %s: cannot mark it failed, retrying: %s", order.id, error)
            return Delivery.RETRY
        logger.error("order %s: dead-lettered (%s)", order.id, DEAD_LETTER_REASON)
        return Delivery.SUCCESS
