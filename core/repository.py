"""Where orders live: keys and values in the Dapr state store.

Both apps reach the same keys: their state store components share one `keyPrefix`.

A key missing from a bulk read is read again on its own before anything acts on its absence:
Dapr's PostgreSQL store (components-contrib v1.18, state/postgresql/v2 BulkGet) does not check
`rows.Err()`, so a read that fails midway (a restart, a timeout) answers "missing" for every key,
without an error. The fault matrix saw the placer drop a committed order that way.
"""

import asyncio
import contextlib
import hashlib
import json
from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter

from core.domain import Decision, Order, OrderEvent, OrderEventKind, OrderStatus
from core.sidecar import SidecarError, StateApi
from core.signing import OrderSigner

# Ids of dead-lettered orders still waiting for a re-drive, as one JSON list.
DEAD_LETTER_INDEX_KEY = "dead-letter-index"
LIST_UPDATE_ATTEMPTS = 10
EVENTS = TypeAdapter(list[OrderEvent])
# The statuses the placer settles an order in, each with the event that says so.
OUTCOMES = {
    OrderStatus.PLACED: OrderEventKind.PLACED,
    OrderStatus.REJECTED: OrderEventKind.REJECTED,
}
OUTBOX_PROJECTION_METADATA = {"outbox.projection": "true", "contentType": "application/json"}


def order_key(order_id: str) -> str:
    return f"order-{order_id}"


def events_key(order_id: str) -> str:
    return f"order-events-{order_id}"


def outcome_key(order_id: str, kind: OrderEventKind) -> str:
    """An event that settles the order's status, kept apart from the list of the others so
    that it is written with the status, without a read of the list first."""
    return f"order-events-{order_id}-{kind.value}"


def decision_key(order_id: str) -> str:
    return f"decision-{order_id}"


def idempotency_key(client_key: str) -> str:
    # Hashed: client keys may hold characters that state keys must not.
    return f"idempotency-{hashlib.sha256(client_key.encode()).hexdigest()}"


class OrderRepository:
    def __init__(self, sidecar: StateApi, store: str, signer: OrderSigner | None = None) -> None:
        self._sidecar = sidecar
        self._store = store
        self._signer = signer  # signs the orders `create` publishes

    async def create(self, order: Order, *, timeout_seconds: float | None = None) -> None:
        """Stores a new order in one state transaction. On a store with the outbox configured
        the runtime publishes the order to the orders topic if, and only if, it commits."""
        key, document = order_key(order.id), order.model_dump(mode="json")
        # The projection is not stored: it only gives the published event its payload (signed,
        # with a signer) and a JSON content type. (On the saved value a JSON content type would
        # make the Redis store require the RedisJSON module.)
        published = document if self._signer is None else self._signer.signed(document)
        projection = {"key": key, "value": published, "metadata": OUTBOX_PROJECTION_METADATA}
        await self._sidecar.execute_transaction(
            self._store,
            [
                {"operation": "upsert", "request": {"key": key, "value": document}},
                {"operation": "upsert", "request": projection},
            ],
            timeout_seconds=timeout_seconds,
        )

    async def get(self, order_id: str, *, timeout_seconds: float | None = None) -> Order | None:
        key = order_key(order_id)
        value, _ = await self._sidecar.get_state(self._store, key, timeout_seconds=timeout_seconds)
        return None if value is None else Order.model_validate_json(value)

    async def decide(
        self, order_id: str, decision: Decision, *, timeout_seconds: float | None = None
    ) -> Decision:
        """Records `decision` unless the order has one already; returns the one that holds.
        A first write: a void and a claim racing for one order cannot both win."""
        try:
            await self._first_decision(order_id, decision, timeout_seconds)
        except SidecarError:
            # Lost the race (or our own write landed without an answer): read what holds.
            held = await self._decision(order_id, timeout_seconds)
            if held is None:
                raise
            return held
        return decision

    async def claim(self, order_id: str) -> bool:
        """Claims the order for the exchange unless it has a decision already: True when this
        call recorded the claim; False when it did not, or cannot tell (the store failed, or
        the write landed without an answer), and `get_for_placement` says what holds."""
        try:
            await self._first_decision(order_id, Decision.PLACE)
        except SidecarError:
            return False
        return True

    async def _first_decision(
        self, order_id: str, decision: Decision, timeout_seconds: float | None = None
    ) -> None:
        await self._sidecar.save_state(
            self._store,
            decision_key(order_id),
            decision.value,
            first_write=True,
            timeout_seconds=timeout_seconds,
        )

    async def decide_all(
        self, order_ids: list[str], decision: Decision
    ) -> dict[str, Decision | None]:
        """`decide` for several orders in two calls to the store; returns the decision that
        holds for each, None where none could be recorded."""
        keys = {order_id: decision_key(order_id) for order_id in order_ids}
        values = dict.fromkeys(keys.values(), decision.value)
        # Some may lose their race, or not be written: the read tells which.
        with contextlib.suppress(SidecarError):
            await self._sidecar.save_states(self._store, values, first_write=True)
        held = await self._sidecar.get_bulk_state(self._store, list(keys.values()))
        return {i: None if key not in held else Decision(held[key]) for i, key in keys.items()}

    async def undecided(self, order_ids: list[str]) -> set[str]:
        """The orders among these that no placer claimed and nobody voided, in one call."""
        keys = {order_id: decision_key(order_id) for order_id in order_ids}
        held = await self._sidecar.get_bulk_state(self._store, list(keys.values())) if keys else {}
        return {order_id for order_id, key in keys.items() if key not in held}

    async def lift_void(self, order_id: str) -> None:
        """Forgets a void, so that a new commit of the same order is placed. A claim stays."""
        if await self._decision(order_id) is Decision.VOID:
            await self._sidecar.delete_state(self._store, decision_key(order_id))

    async def _decision(
        self, order_id: str, timeout_seconds: float | None = None
    ) -> Decision | None:
        key = decision_key(order_id)
        value, _ = await self._sidecar.get_state(self._store, key, timeout_seconds=timeout_seconds)
        return None if value is None else Decision(json.loads(value))

    async def find_uncommitted(self, order_ids: list[str]) -> dict[str, Decision | None]:
        """The orders among these that are not in the store, each with its decision if it has
        one: one call to the store, and one more per order it seems not to hold."""
        keys = [key for i in order_ids for key in (order_key(i), decision_key(i))]
        values = await self._sidecar.get_bulk_state(self._store, keys)
        absent = [i for i in order_ids if order_key(i) not in values]
        confirmed = await asyncio.gather(*(self.get(i) for i in absent))
        return {
            i: None if (held := values.get(decision_key(i))) is None else Decision(held)
            for i, order in zip(absent, confirmed, strict=True)
            if order is None
        }

    async def get_for_placement(self, order_id: str) -> tuple[Order | None, Decision | None]:
        """The stored order and its decision, if any, in one call to the store (three when
        the order seems absent)."""
        keys = [order_key(order_id), decision_key(order_id)]
        values = await self._sidecar.get_bulk_state(self._store, keys)
        document, decision = (values.get(key) for key in keys)
        if document is None:
            return await self.get(order_id), await self._decision(order_id)
        return Order.model_validate(document), None if decision is None else Decision(decision)

    async def save(self, order: Order) -> None:
        """Overwrites an order (a status change); plain saves never go through the outbox."""
        await self._sidecar.save_state(
            self._store, order_key(order.id), order.model_dump(mode="json")
        )

    async def reserve_idempotency_key(
        self, client_key: str, order: Order, retention_seconds: int
    ) -> Order:
        """Ties `client_key` to `order` unless it is tied already; returns the order it is tied
        to. The key expires after `retention_seconds`."""
        key = idempotency_key(client_key)
        try:
            await self._sidecar.save_state(
                self._store,
                key,
                order.model_dump(mode="json"),
                first_write=True,
                ttl_seconds=retention_seconds,
            )
        except SidecarError:
            # A lost first write is a 409 on some stores and a plain error on others (Redis):
            # the key's presence tells which. When the store is down, this read fails too.
            value, _ = await self._sidecar.get_state(self._store, key)
            if value is None:
                raise
            return Order.model_validate_json(value)
        return order

    async def settle(self, order: Order, detail: str | None = None) -> None:
        """Saves the order in the status the placer settled it in (placed or rejected), with
        the event that says so, in one transaction: the status never stands without its event.
        One call to the store, and no read: the event has a key of its own."""
        event = OrderEvent(kind=OUTCOMES[order.status], detail=detail)
        await self._sidecar.execute_transaction(
            self._store,
            [
                _upsert(outcome_key(order.id, event.kind), event.model_dump(mode="json")),
                _upsert(order_key(order.id), order.model_dump(mode="json")),
            ],
        )

    async def events(self, order: Order) -> list[OrderEvent]:
        """The order's history, oldest first: its acceptance, then what the placer recorded."""
        # One read per key, not a bulk read: a bulk read may drop keys without an error.
        keys = [events_key(order.id), *(outcome_key(order.id, k) for k in OUTCOMES.values())]
        values = await asyncio.gather(*(self._sidecar.get_state(self._store, k) for k in keys))
        listed, outcomes = values[0][0], [value for value, _ in values[1:] if value is not None]
        recorded = [] if listed is None else EVENTS.validate_json(listed)
        recorded += [OrderEvent.model_validate_json(value) for value in outcomes]
        recorded.sort(key=lambda event: event.at)
        return [OrderEvent(kind=OrderEventKind.ACCEPTED, at=order.created_at), *recorded]

    async def record_event(self, order_id: str, event: OrderEvent) -> None:
        """Adds an event to the order's list (the events that settle its status: `settle`)."""
        await self._update_list(
            events_key(order_id), lambda events: [*events, event.model_dump(mode="json")]
        )

    async def dead_lettered_ids(self) -> list[str]:
        value, _ = await self._sidecar.get_state(self._store, DEAD_LETTER_INDEX_KEY)
        return [] if value is None else [str(order_id) for order_id in json.loads(value)]

    async def add_dead_lettered(self, order_id: str) -> None:
        await self._update_list(
            DEAD_LETTER_INDEX_KEY, lambda ids: [*ids, order_id] if order_id not in ids else ids
        )

    async def remove_dead_lettered(self, order_id: str) -> None:
        await self._update_list(
            DEAD_LETTER_INDEX_KEY, lambda ids: [i for i in ids if i != order_id]
        )

    async def _update_list(self, key: str, change: Callable[[list[Any]], list[Any]]) -> None:
        """Read-modify-write of a JSON list under optimistic concurrency: the lists are short
        and rarely written at once, so a lost race is retried at once."""
        last_error = SidecarError(f"{key}: not updated")
        for _ in range(LIST_UPDATE_ATTEMPTS):
            value, etag = await self._sidecar.get_state(self._store, key)
            current = [] if value is None else list(json.loads(value))
            try:
                await self._sidecar.save_state(
                    self._store, key, change(current), etag=etag, first_write=True
                )
            except SidecarError as error:  # a lost race (409, or a plain error on Redis)
                last_error = error
                continue
            return
        raise last_error


def _upsert(key: str, value: Any) -> dict[str, Any]:
    return {"operation": "upsert", "request": {"key": key, "value": value}}
