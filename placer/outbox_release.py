"""Releases the runtime's outbox messages whose commit failed.

Dapr's outbox publishes each order to an internal topic before it commits it; its subscriber,
in the API's sidecar, then waits for the commit's marker key (`outbox-<uuid>`, the message's
id) and publishes the order once the marker is there. For a commit that failed, the marker
never comes. The runtime means to give up after 10 s, but its backoff (dapr v1.18,
pkg/runtime/pubsub/outbox.go) has no Stop value, so it polls the store for ever, in a tight
loop once its context expires: every store outage would leave the API's sidecars burning CPU.

The placer subscribes to the internal topic too (in its own consumer group). Once the API has
answered an order (its deadline has passed), an order that is not in the store was never
committed: the placer voids it and writes its marker, expiring. The runtime then publishes the
order and deletes the marker, and the placer acknowledges that event without placing it.
"""

import logging
from datetime import UTC, datetime, timedelta

import anyio

from core.domain import Decision
from core.repository import OrderRepository
from core.sidecar import DaprSidecar, SidecarError
from placer.placement import Delivery, order_from_event

logger = logging.getLogger(__name__)

MARKER_PREFIX = "outbox-"
# After the API's deadline: time for a commit that answered late to be visible to our read.
SETTLE_SECONDS = 2.0
# A marker nobody reads (the runtime gave up on the message) must not stay for ever.
MARKER_TTL_SECONDS = 3600


class OutboxRelease:
    def __init__(
        self,
        orders: OrderRepository,
        sidecar: DaprSidecar,
        marker_store: str,
        *,
        answer_deadline_seconds: float,
    ) -> None:
        self._orders = orders
        self._sidecar = sidecar
        self._marker_store = marker_store
        self._answered_after = timedelta(seconds=answer_deadline_seconds + SETTLE_SECONDS)

    async def release_if_failed(self, event: dict[str, object]) -> Delivery:
        marker = event.get("id")
        order = order_from_event(event)
        if not isinstance(marker, str) or not marker.startswith(MARKER_PREFIX) or order is None:
            return Delivery.SUCCESS  # not an outbox message of an order: nothing to release
        # Until the API has answered, a missing order may be a commit still under way.
        answered_at = order.created_at + self._answered_after
        await anyio.sleep(max(0.0, (answered_at - datetime.now(UTC)).total_seconds()))
        try:
            if await self._orders.get(order.id) is not None:
                return Delivery.SUCCESS  # committed: the runtime publishes it
            # Should the commit land after all, the void keeps it from being placed.
            await self._orders.decide(order.id, Decision.VOID)
            await self._sidecar.save_state(
                self._marker_store, marker, "0", ttl_seconds=MARKER_TTL_SECONDS
            )
        except SidecarError as error:
            logger.warning("order %s: outbox message not released yet: %s", order.id, error)
            return Delivery.RETRY
        logger.warning("order %s: never committed; released its outbox message", order.id)
        return Delivery.SUCCESS
