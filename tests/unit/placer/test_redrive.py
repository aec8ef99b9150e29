"""Re-driving dead-lettered orders: the real repository over the sidecar's state API in
memory."""

import pytest

from core.config import settings
from core.domain import OrderStatus
from core.repository import DEAD_LETTER_INDEX_KEY, events_key
from placer.redrive import redrive
from tests.factories import accepted_order
from tests.unit.fakes import MemorySidecar, repository, store_order, stored_order

pytestmark = pytest.mark.anyio


async def test_failed_orders_are_published_again_and_the_placed_ones_only_unlisted() -> None:
    failed = accepted_order().model_copy(
        update={"status": OrderStatus.FAILED, "failure_reason": "retries ran out"}
    )
    placed = accepted_order().model_copy(update={"status": OrderStatus.PLACED})
    sidecar = MemorySidecar()
    for order in (failed, placed):
        store_order(sidecar, order)
    sidecar.put(DEAD_LETTER_INDEX_KEY, [failed.id, placed.id])

    assert await redrive(sidecar, repository(sidecar)) == 1

    again = stored_order(sidecar, failed.id)
    assert again is not None
    assert (again.status, again.failure_reason) == (OrderStatus.ACCEPTED, None)
    assert sidecar.published == [
        (settings.PUBSUB, settings.ORDERS_TOPIC, again.model_dump(mode="json"))
    ]
    assert [event["kind"] for event in sidecar.value(events_key(failed.id))] == ["redriven"]
    assert stored_order(sidecar, placed.id) == placed
    assert sidecar.value(DEAD_LETTER_INDEX_KEY) == []
