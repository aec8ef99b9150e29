"""Voids that could not be written when their client got its 500: the store was unreachable.
They are retried in the background until they land, so that the order, should its commit
have landed after all, is never placed. (The placer gives such late orders a grace period
before it claims them; see placer/placement.py.)"""

import asyncio
import logging

from core.domain import Decision
from core.repository import OrderRepository
from core.sidecar import SidecarError

logger = logging.getLogger(__name__)

RETRY_INTERVAL_SECONDS = 0.25
GIVE_UP_AFTER_SECONDS = 120.0
VOIDS_AT_ONCE = 20


class PendingVoids:
    def __init__(self, orders: OrderRepository) -> None:
        self._orders = orders
        self._deadlines: dict[str, float] = {}  # order id → when to give up
        self._worker: asyncio.Task[None] | None = None
        self._store_answered = True

    def __len__(self) -> int:
        return len(self._deadlines)

    @property
    def store_unreachable(self) -> bool:
        """True from a void that could not be written until one is: the store is down."""
        return bool(self._deadlines) and not self._store_answered

    def add(self, order_id: str) -> None:
        loop = asyncio.get_running_loop()
        self._deadlines[order_id] = loop.time() + GIVE_UP_AFTER_SECONDS
        self._store_answered = False
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._void_until_empty())

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        if self._deadlines:
            logger.error("%d orders answered 500 were not voided", len(self._deadlines))

    async def _void_until_empty(self) -> None:
        while self._deadlines:
            await asyncio.sleep(RETRY_INTERVAL_SECONDS)
            self._give_up_on_expired()
            pending = list(self._deadlines)
            # One probe while the store is down, not a call per order: hundreds of orders may
            # be waiting after an outage.
            if pending and await self._void(pending[0]):
                await self._void_all(pending[1:])

    async def _void_all(self, order_ids: list[str]) -> None:
        slots = asyncio.Semaphore(VOIDS_AT_ONCE)

        async def void_one(order_id: str) -> None:
            async with slots:
                await self._void(order_id)

        await asyncio.gather(*(void_one(order_id) for order_id in order_ids))

    async def _void(self, order_id: str) -> bool:
        try:
            held = await self._orders.decide(order_id, Decision.VOID)
        except SidecarError:
            self._store_answered = False
            return False
        self._store_answered = True
        self._deadlines.pop(order_id, None)
        if held is Decision.PLACE:
            logger.error("order %s: answered 500, but the placer claimed it first", order_id)
        else:
            logger.info("order %s: voided", order_id)
        return True

    def _give_up_on_expired(self) -> None:
        now = asyncio.get_running_loop().time()
        for order_id, deadline in list(self._deadlines.items()):
            if now > deadline:
                del self._deadlines[order_id]
                logger.error("order %s: answered 500, and could not be voided", order_id)
