"""Releases the runtime's outbox messages whose commit failed.

Dapr's outbox publishes each order to an internal topic before it commits it; its subscriber,
in the API's sidecar, then waits for the commit's marker key (`outbox-<uuid>`, the message's
id) and publishes the order once the marker is there. For a commit that failed, the marker
never comes. The runtime means to give up after 10 s, but its backoff (dapr v1.18,
pkg/runtime/pubsub/outbox.go) has no Stop value, so it polls the store for ever, in a tight
loop once its context expires: every store outage would leave the API's sidecars burning CPU.

The placer subscribes to the internal topic too (in its own consumer group), in batches: one
read of the store per batch, not one call per order, so that the backlog after an outage is
released in seconds, before the runtime starts polling without pause (11 s after a failed
commit). Once the API has answered an order (its deadline has passed), an order that is not in
the store was never committed: the placer voids it and writes its marker, expiring. The runtime
then publishes the order and deletes the marker, and the placer acknowledges that event without
placing it.
"""

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio

from core.domain import Decision, Order
from core.repository import OrderRepository
from core.sidecar import SidecarError, StateApi
from placer.placement import Delivery, order_from_event

logger = logging.getLogger(__name__)

MARKER_PREFIX = "outbox-"
# After the API's deadline: time for a commit that answered late to be visible to our read.
SETTLE_SECONDS = 2.0
# A marker nobody reads (the runtime gave up on the message) must not stay for ever.
MARKER_TTL_SECONDS = 3600


@dataclass(frozen=True)
class OutboxMessage:
    marker: str  # the key the runtime waits for: the message's id
    order: Order


def outbox_message(event: Any) -> OutboxMessage | None:
    """The order and marker of a runtime outbox message, or None for anything else."""
    if not isinstance(event, dict):
        return None
    marker = event.get("id")
    if not isinstance(marker, str) or not marker.startswith(MARKER_PREFIX):
        return None
    order = order_from_event(event)
    return None if order is None else OutboxMessage(marker, order)


class OutboxRelease:
    def __init__(
        self,
        orders: OrderRepository,
        sidecar: StateApi,
        marker_store: str,
        *,
        answer_deadline_seconds: float,
    ) -> None:
        self._orders = orders
        self._sidecar = sidecar
        self._marker_store = marker_store
        self._answered_after = timedelta(seconds=answer_deadline_seconds + SETTLE_SECONDS)

    async def release_failed(self, events: Mapping[str, Any]) -> dict[str, Delivery]:
        """Releases the failed commits among a batch of events; answers by entry id."""
        # Anything but an order's outbox message has nothing to release.
        answers = dict.fromkeys(events, Delivery.SUCCESS)
        messages = {entry: m for entry, event in events.items() if (m := outbox_message(event))}
        # Until the API has answered, a missing order may be a commit still under way. The
        # messages answered already go first: a batch after an outage spans many seconds,
        # and its oldest must not wait for its newest.
        now = datetime.now(UTC)
        answered = {e: m for e, m in messages.items() if self._answered_at(m) <= now}
        answers |= await self._release(answered)
        pending = {e: m for e, m in messages.items() if e not in answered}
        if pending:
            last = max(self._answered_at(message) for message in pending.values())
            await anyio.sleep(max(0.0, (last - datetime.now(UTC)).total_seconds()))
            answers |= await self._release(pending)
        return answers

    def _answered_at(self, message: OutboxMessage) -> datetime:
        return message.order.created_at + self._answered_after

    async def _release(self, messages: dict[str, OutboxMessage]) -> dict[str, Delivery]:
        if not messages:
            return {}
        try:
            uncommitted = await self._orders.find_uncommitted(
                [message.order.id for message in messages.values()]
            )
            failed = {e: m for e, m in messages.items() if m.order.id in uncommitted}
            # Voided first: should the commit land after all, it is never placed. The API
            # voids the orders it answered 500 too, often before we look.
            undecided = [i for i, decision in uncommitted.items() if decision is None]
            if undecided:
                uncommitted |= await self._orders.decide_all(undecided, Decision.VOID)
            releasable = {e: m for e, m in failed.items() if uncommitted[m.order.id] is not None}
            await self._write_markers(releasable.values())
        except SidecarError as error:
            logger.warning("%d outbox messages not released yet: %s", len(messages), error)
            return dict.fromkeys(messages, Delivery.RETRY)
        for message in releasable.values():
            logger.warning(
                "order %s: never committed; released its outbox message", message.order.id
            )
        answers = dict.fromkeys(messages, Delivery.SUCCESS)
        # Not voided (the store did not answer for it): tried again with the next attempt.
        return answers | dict.fromkeys(failed.keys() - releasable.keys(), Delivery.RETRY)

    async def _write_markers(self, messages: Iterable[OutboxMessage]) -> None:
        """In one transaction: one commit for the whole batch, not one per marker."""
        markers = dict.fromkeys((message.marker for message in messages), "0")
        if markers:
            await self._sidecar.save_in_transaction(
                self._marker_store, markers, ttl_seconds=MARKER_TTL_SECONDS
            )
