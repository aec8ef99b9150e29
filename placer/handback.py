"""Hands back the orders that a stopping sidecar read from the stream and never delivered.

Every placer's sidecar reads the orders stream as the same consumer of the same group (Dapr
names both after the app id). A sidecar that is shutting down keeps reading after it closed its
subscription, and what it reads then is never delivered: the entries stay pending, and the
runtime hands them out again only once they have been idle for the component's
`processingTimeout` (180 s) (docs/runtime-defects.md, defect 7). A rolling upgrade left orders
waiting that long.

So every STRANDED_CHECK_INTERVAL_SECONDS each placer looks for pending entries idle for
STRANDED_AFTER_SECONDS whose order no placer has claimed: a delivery that reached a placer is
claimed within milliseconds, so such an entry never reached one. It marks them idle for far
longer than any `processingTimeout`, and the sidecars' next look for redeliveries (every
`redeliverInterval`) delivers them again. An entry whose order was claimed is in a placer's
hands (being placed, held, or lost with a crashed placer) and is left to `processingTimeout`.
An entry handed back that was only waiting in a live sidecar is delivered twice, which the
placer answers as any repeated delivery. While the exchange is down, deliveries wait in the
sidecars by design, and nothing is handed back.
"""

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.repository import OrderRepository
from core.sidecar import SidecarError
from placer import metrics
from placer.stream_trim import as_text, every

logger = logging.getLogger(__name__)

# The idle time given to an entry handed back: above any processingTimeout, so that the
# runtime's next look for redeliveries takes it.
HANDED_BACK_IDLE_MS = 24 * 3600 * 1000
# Pending entries looked at per round, the oldest first.
MAX_ENTRIES_PER_ROUND = 1000


class StrandedHandback:
    def __init__(
        self,
        client: Redis,
        orders: OrderRepository,
        stream: str,
        *,
        after_seconds: float,
        timeout_seconds: float,
        paused: Callable[[], bool],
    ) -> None:
        self._client = client
        self._orders = orders
        self._stream = stream
        self._after_ms = int(after_seconds * 1000)
        self._timeout_seconds = timeout_seconds
        self._paused = paused  # True while the exchange is down

    async def hand_back(self) -> int:
        """One look at the stream: hands back the stranded entries; returns how many."""
        handed_back = 0
        async with asyncio.timeout(self._timeout_seconds):
            for group in await self._groups():
                handed_back += await self._hand_back(group)
        return handed_back

    async def _groups(self) -> list[str]:
        if not await self._client.exists(self._stream):
            return []
        groups: list[dict[str, Any]] = await self._client.xinfo_groups(self._stream)
        return [as_text(group["name"]) for group in groups]

    async def _hand_back(self, group: str) -> int:
        idle: list[dict[str, Any]] = await self._client.xpending_range(
            self._stream, group, min="-", max="+", count=MAX_ENTRIES_PER_ROUND, idle=self._after_ms
        )
        owners = {
            as_text(entry["message_id"]): as_text(entry["consumer"])
            for entry in idle
            # Not those handed back already, waiting for the runtime to take them.
            if entry["time_since_delivered"] < HANDED_BACK_IDLE_MS
        }
        if not owners:
            return 0
        orders = await self._orders_of(list(owners))
        undecided = await self._orders.undecided(list(set(orders.values())))
        stranded = [entry for entry, order_id in orders.items() if order_id in undecided]
        handed_back = 0
        for consumer in {owners[entry] for entry in stranded}:
            # Only those still idle that long: the runtime may have just claimed one itself.
            claimed = await self._client.xclaim(
                self._stream, group, consumer, self._after_ms,
                [entry for entry in stranded if owners[entry] == consumer],
                idle=HANDED_BACK_IDLE_MS, justid=True,
            )  # fmt: skip
            handed_back += len(claimed)
        return handed_back

    async def _orders_of(self, entries: list[str]) -> dict[str, str]:
        """The order id each entry carries, by entry (entries gone or not orders left out)."""
        async with self._client.pipeline(transaction=False) as pipe:
            for entry in entries:
                pipe.xrange(self._stream, min=entry, max=entry)
            found: list[list[tuple[Any, dict[Any, Any]]]] = await pipe.execute()
        orders = {}
        for entry, rows in zip(entries, found, strict=True):
            order_id = order_id_of(rows[0][1]) if rows else None
            if order_id is not None:
                orders[entry] = order_id
        return orders

    async def run(self, interval_seconds: float) -> None:
        """Looks every `interval_seconds` until cancelled; a failed look waits for the next."""
        await every(interval_seconds, self._round)

    async def _round(self) -> None:
        if self._paused():
            metrics.HANDBACK_ROUNDS.labels(outcome="paused").inc()
            return
        try:
            handed_back = await self.hand_back()
        except (RedisError, OSError, TimeoutError, SidecarError) as error:
            metrics.HANDBACK_ROUNDS.labels(outcome="failed").inc()
            logger.warning("stranded deliveries not looked for this time: %r", error)
            return
        metrics.HANDBACK_ROUNDS.labels(outcome="done").inc()
        if handed_back:
            metrics.HANDED_BACK.inc(handed_back)
            logger.warning("%d stranded deliveries handed back for redelivery", handed_back)

    async def aclose(self) -> None:
        await self._client.aclose()


def order_id_of(fields: dict[Any, Any]) -> str | None:
    """The order id in a stream entry as Dapr's Redis pub/sub writes it: the CloudEvent, as
    JSON, in its `data` field."""
    raw = fields.get(b"data", fields.get("data"))
    if not isinstance(raw, bytes | str):
        return None
    try:
        order = json.loads(raw)["data"]
    except (TypeError, ValueError, KeyError):
        return None
    order_id = order.get("id") if isinstance(order, dict) else None
    return order_id if isinstance(order_id, str) else None
