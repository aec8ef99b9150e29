"""The repository's reads when a bulk read drops keys without an error, as Dapr's PostgreSQL
store does when the read fails midway: a key is absent only once a read of it alone says so."""

import json
from typing import Any

import pytest

from core.domain import Decision
from core.repository import OrderRepository, decision_key, order_key
from tests.factories import accepted_order

pytestmark = pytest.mark.anyio


class TruncatingSidecar:
    """Holds `values`; its bulk reads answer as if every key were missing."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    async def get_bulk_state(self, store: str, keys: list[str]) -> dict[str, Any]:
        return {}

    async def get_state(
        self, store: str, key: str, *, timeout_seconds: float | None = None
    ) -> tuple[bytes | None, str | None]:
        if key not in self.values:
            return None, None
        return json.dumps(self.values[key]).encode(), "1"


def repository(values: dict[str, Any]) -> OrderRepository:
    return OrderRepository(TruncatingSidecar(values), "orderstore")  # type: ignore[arg-type]


async def test_order_dropped_by_a_bulk_read_is_found_for_placement() -> None:
    order = accepted_order()
    orders = repository(
        {order_key(order.id): order.model_dump(mode="json"), decision_key(order.id): "place"}
    )
    assert await orders.get_for_placement(order.id) == (order, Decision.PLACE)


async def test_order_dropped_by_a_bulk_read_is_not_taken_for_uncommitted() -> None:
    stored, missing = accepted_order(), accepted_order()
    orders = repository({order_key(stored.id): stored.model_dump(mode="json")})
    assert await orders.find_uncommitted([stored.id, missing.id]) == {missing.id: None}
