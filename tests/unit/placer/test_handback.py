"""What the hand-back of stranded deliveries reads from a stream entry, and when it does not
look at all (placer/handback.py; on real Redis and daprd: tests/integration/
test_stranded_handback.py)."""

import asyncio
import json
from typing import Any

import pytest
from prometheus_client import REGISTRY

from placer.handback import StrandedHandback, order_id_of

ORDER_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"


def entry_fields(data: Any) -> dict[bytes, bytes]:
    """A stream entry as Dapr's Redis pub/sub writes it: the CloudEvent, as JSON, in `data`."""
    cloud_event = {"id": "outbox-1", "type": "com.dapr.event.sent", "data": data}
    return {b"data": json.dumps(cloud_event).encode()}


def test_the_order_id_is_read_from_the_cloud_event() -> None:
    assert order_id_of(entry_fields({"id": ORDER_ID, "quantity": 1})) == ORDER_ID


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {b"data": b"not json"},
        {b"data": json.dumps({"id": "x"}).encode()},  # no data in the event
        entry_fields("a string"),
        entry_fields({"quantity": 1}),
        entry_fields({"id": 7}),
    ],
)
def test_an_entry_that_carries_no_order_id_is_left_out(fields: dict[bytes, bytes]) -> None:
    assert order_id_of(fields) is None


class Untouchable:
    """Fails any call: a paused round must make none."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"called {name}")


def test_nothing_is_looked_at_while_the_exchange_is_down() -> None:
    handback = StrandedHandback(
        Untouchable(),  # type: ignore[arg-type]
        Untouchable(),  # type: ignore[arg-type]
        "orders",
        after_seconds=30,
        timeout_seconds=5,
        paused=lambda: True,
    )
    before = paused_rounds()
    asyncio.run(handback._round())
    assert paused_rounds() == before + 1


def paused_rounds() -> float:
    rounds = REGISTRY.get_sample_value("orders_stranded_check_rounds_total", {"outcome": "paused"})
    return rounds or 0.0
