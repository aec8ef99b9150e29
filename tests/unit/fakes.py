"""The sidecar's state API in memory, for unit tests of what runs above it (the repository,
acceptance, placement, the outbox release). The real client is tested once, against a loopback
server (tests/unit/core/test_sidecar.py), and the whole path against a real daprd
(tests/integration)."""

import asyncio
import itertools
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from core.domain import Decision, Order
from core.repository import OrderRepository, decision_key, idempotency_key, order_key
from core.sidecar import EtagMismatchError, SidecarError, StateApi

STORE = "orderstore"  # the store the repositories of these tests use


@dataclass(frozen=True)
class Entry:
    value: Any  # as the JSON of a save carried it
    etag: str
    ttl_seconds: int | None  # recorded, never expired


@dataclass(frozen=True)
class Write:
    key: str
    value: Any
    etag: str | None = None
    first_write: bool = False
    ttl_seconds: int | None = None


class MemorySidecar:
    """Keeps keys and etags as a state store does. With `first_write`, a save without an etag
    succeeds only for a missing key, and one with an etag only while it is the key's current
    one; otherwise it raises EtagMismatchError (a 409 from the sidecar). Without it the last
    write wins, etag or not (as on Redis). Transactions apply all their writes or none; the
    outbox's projection is not stored (nor published: the runtime does that)."""

    def __init__(self) -> None:
        self.stores: dict[str, dict[str, Entry]] = defaultdict(dict)
        self.published: list[tuple[str, str, Any]] = []  # (pubsub, topic, data)
        self.projections: list[Any] = []  # what the outbox would publish for each commit
        self.calls: list[tuple[str, list[str]]] = []  # (method, the keys it named), in order
        self.ready = True
        self.failure: Exception | None = None  # every call raises it, having done nothing
        self.failing: dict[str, Exception] = {}  # by method: raised, having done nothing
        self.lost_answers: dict[str, Exception] = {}  # by method: raised once the work is done
        # Keys whose writes fail: a transaction with one fails whole, a bulk save saves the rest.
        self.unwritable: set[str] = set()
        # Bulk reads answer as if no key were there, without an error: as Dapr's PostgreSQL
        # store does when its read fails midway.
        self.truncating_bulk_reads = False
        self.delay_seconds = 0.0  # how long each call takes
        self._etags = itertools.count(1)

    # What a test sets or reads directly.

    def value(self, key: str, store: str = STORE) -> Any:
        """The key's value; None when it is missing."""
        entry = self.stores[store].get(key)
        return None if entry is None else entry.value

    def put(self, key: str, value: Any, store: str = STORE) -> None:
        self._apply(store, [Write(key, value)])

    def calls_to(self, method: str) -> list[list[str]]:
        """The keys of each call to `method`, in order."""
        return [keys for name, keys in self.calls if name == method]

    # The sidecar's API (core.sidecar.StateApi).

    async def is_ready(self, timeout_seconds: float) -> bool:
        return self.ready

    async def aclose(self) -> None:
        pass

    async def get_state(
        self, store: str, key: str, *, timeout_seconds: float | None = None
    ) -> tuple[bytes | None, str | None]:
        await self._enter("get_state", [key])
        entry = self.stores[store].get(key)
        self._answer("get_state")
        return (None, None) if entry is None else (json.dumps(entry.value).encode(), entry.etag)

    async def get_bulk_state(self, store: str, keys: list[str]) -> dict[str, Any]:
        await self._enter("get_bulk_state", keys)
        held = self.stores[store]
        self._answer("get_bulk_state")
        if self.truncating_bulk_reads:
            return {}
        return {key: held[key].value for key in keys if key in held}

    async def save_state(
        self,
        store: str,
        key: str,
        value: Any,
        *,
        etag: str | None = None,
        first_write: bool = False,
        ttl_seconds: int | None = None,
        timeout_seconds: float | None = None,
    ) -> None:
        await self._enter("save_state", [key])
        self._apply(store, [Write(key, value, etag, first_write, ttl_seconds)])
        self._answer("save_state")

    async def save_states(
        self, store: str, values: dict[str, Any], *, first_write: bool = False
    ) -> None:
        """Each key on its own, as the sidecar saves them: the others are saved when some
        fail, and then this raises."""
        await self._enter("save_states", list(values))
        errors: list[SidecarError] = []
        for key, value in values.items():
            try:
                self._apply(store, [Write(key, value, first_write=first_write)])
            except SidecarError as error:
                errors.append(error)
        if errors:
            raise errors[0]
        self._answer("save_states")

    async def save_in_transaction(
        self, store: str, values: dict[str, Any], *, ttl_seconds: int
    ) -> None:
        await self._enter("save_in_transaction", list(values))
        writes = [Write(key, value, ttl_seconds=ttl_seconds) for key, value in values.items()]
        self._apply(store, writes)
        self._answer("save_in_transaction")

    async def execute_transaction(
        self, store: str, operations: list[dict[str, Any]], *, timeout_seconds: float | None = None
    ) -> None:
        """Upserts (Dapr's operation shape); deletes are not used by the service."""
        requests = [operation["request"] for operation in operations]
        await self._enter("execute_transaction", [request["key"] for request in requests])
        if any(operation["operation"] != "upsert" for operation in operations):
            raise SidecarError("only upserts are faked")
        outbox = [r for r in requests if r.get("metadata", {}).get("outbox.projection") == "true"]
        stored = [r for r in requests if r not in outbox]
        self._apply(store, [_write_of(request) for request in stored])
        self.projections += [request["value"] for request in outbox]
        self._answer("execute_transaction")

    async def delete_state(self, store: str, key: str) -> None:
        await self._enter("delete_state", [key])
        self.stores[store].pop(key, None)
        self._answer("delete_state")

    async def publish(self, pubsub: str, topic: str, data: Any) -> None:
        await self._enter("publish", [])
        self.published.append((pubsub, topic, data))
        self._answer("publish")

    async def _enter(self, method: str, keys: list[str]) -> None:
        self.calls.append((method, keys))
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        failure = self.failure or self.failing.get(method)
        if failure is not None:
            raise failure

    def _answer(self, method: str) -> None:
        if (lost := self.lost_answers.get(method)) is not None:
            raise lost

    def _apply(self, store: str, writes: list[Write]) -> None:
        """All the writes, or none of them when one may not be made."""
        held = self.stores[store]
        for write in writes:
            if write.key in self.unwritable:
                raise SidecarError(f"{write.key}: the store refused the write")
            current = held.get(write.key)
            if write.first_write and write.etag != (None if current is None else current.etag):
                raise EtagMismatchError(f"{write.key}: etag {write.etag!r} is not current")
        for write in writes:
            value = json.loads(json.dumps(write.value))  # a copy, as JSON carries it
            held[write.key] = Entry(value, str(next(self._etags)), write.ttl_seconds)


def _write_of(request: dict[str, Any]) -> Write:
    ttl = request.get("metadata", {}).get("ttlInSeconds")
    return Write(
        request["key"],
        request["value"],
        request.get("etag"),
        request.get("options", {}).get("concurrency") == "first-write",
        None if ttl is None else int(ttl),
    )


def repository(sidecar: StateApi, store: str = STORE) -> OrderRepository:
    return OrderRepository(sidecar, store)


# What the store holds, in the repository's terms.


def stored_order(sidecar: MemorySidecar, order_id: str) -> Order | None:
    document = sidecar.value(order_key(order_id))
    return None if document is None else Order.model_validate(document)


def decision_of(sidecar: MemorySidecar, order_id: str) -> Decision | None:
    held = sidecar.value(decision_key(order_id))
    return None if held is None else Decision(held)


def order_of_key(sidecar: MemorySidecar, client_key: str) -> Order | None:
    document = sidecar.value(idempotency_key(client_key))
    return None if document is None else Order.model_validate(document)


def decide(sidecar: MemorySidecar, order_id: str, decision: Decision) -> None:
    sidecar.put(decision_key(order_id), decision.value)


def store_order(sidecar: MemorySidecar, order: Order) -> None:
    sidecar.put(order_key(order.id), order.model_dump(mode="json"))


_: StateApi = MemorySidecar()  # mypy checks that the fake has the real client's API
