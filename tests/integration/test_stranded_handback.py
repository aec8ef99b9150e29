"""Orders that a stopping sidecar read from the stream and never delivered, on the real stack:
the placer hands them back, and they are placed long before the pub/sub's processingTimeout
(180 s, as shipped) would have them delivered again (placer/handback.py).

A stopping sidecar is played by a Redis client reading the orders stream as the placers' group
and consumer, with the placer's own sidecar stopped meanwhile: the entries are then pending,
owned by that consumer, and never delivered, as the runtime leaves them."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from core.config import settings
from devstack.config import StateStoreKind
from devstack.stack import start_sidecar
from placer.stock_exchange import ExchangeLedger
from tests.factories import limit_order_body
from tests.integration.stack_fixtures import (
    RunningStack,
    fast_retry_components,
    running_stack,
    set_pubsub_metadata,
)
from tests.polling import wait_for
from tests.telemetry import scrape, value

HANDBACK_SETTINGS = {
    "EXCHANGE_LATENCY_SECONDS": "0.05",
    "EXCHANGE_FAILURE_RATE": "0",
    "STRANDED_CHECK_INTERVAL_SECONDS": "0.5",
    "STRANDED_AFTER_SECONDS": "2",
}
# Well below the shipped processingTimeout (180 s): only a hand-back places them this soon.
PLACED_WITHIN_SECONDS = 60


def quick_redelivery_check(components: Path) -> Path:
    """The shipped processingTimeout, with the sidecars looking for redeliveries every second
    instead of every 15 s, so that a handed-back entry comes back in a second or two."""
    return set_pubsub_metadata(components, {"redeliverInterval": "1000"})


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[RunningStack]:
    components = quick_redelivery_check(fast_retry_components(tmp_path / "components"))
    with running_stack(
        tmp_path / "stack", StateStoreKind.REDIS, components=components, app_env=HANDBACK_SETTINGS
    ) as running:
        yield running


def strand(stack: RunningStack, count: int, *, claimed: int = 0) -> list[str]:
    """Posts `count` orders while the placer's sidecar is stopped, records a placer's claim on
    the first `claimed` of them (as a placer that crashed mid-placement leaves it), and reads
    them all from the stream as the placers' consumer, never to acknowledge them; returns their
    ids."""
    placer = stack.stack.placer
    placer.sidecar.stop()
    ids = []
    for _ in range(count):
        response = stack.client.post("/orders", json=limit_order_body())
        assert response.status_code == 201
        ids.append(response.json()["id"])
    for order_id in ids[:claimed]:
        claim(stack, order_id)
    group = placer.app_id
    with redis.Redis(port=stack.stores.redis.port, socket_timeout=5) as client:
        # The outbox publishes each order about a second after its commit.
        wait_for(
            lambda: client.xinfo_groups(settings.ORDERS_TOPIC)[0]["lag"] >= count,
            what=f"{count} orders in the stream",
            timeout_seconds=30,
        )
        read: Any = client.xreadgroup(group, group, {settings.ORDERS_TOPIC: ">"}, count=count)
        assert len(read[0][1]) == count
    placer.sidecar = start_sidecar(stack.group, stack.options, placer.app_id, placer.ports)
    return ids


def claim(stack: RunningStack, order_id: str) -> None:
    """A placer's claim on the order, written through the API's sidecar (its store reaches the
    same keys as the placer's; the placer's sidecar is stopped)."""
    token = stack.options.dapr_api_token or ""
    response = httpx.post(
        f"{stack.stack.api.dapr_url}/v1.0/state/{settings.STATE_STORE}",
        json=[{"key": f"decision-{order_id}", "value": "place"}],
        headers={"dapr-api-token": token},
        timeout=10,
    )
    assert response.status_code == 204, response.text


def placer_metric(stack: RunningStack, name: str, **labels: str) -> float:
    return value(scrape(stack.stack.placer.metrics_url), name, **labels)


def handed_back(stack: RunningStack) -> float:
    return placer_metric(stack, "orders_stranded_handed_back_total")


def test_orders_a_stopping_sidecar_never_delivered_are_placed_without_waiting_180_s(
    stack: RunningStack,
) -> None:
    ids = strand(stack, 3)
    ledger = ExchangeLedger(stack.ledger_path)
    wait_for(
        lambda: set(ids) <= ledger.submissions().keys(),
        what="the stranded orders placed",
        timeout_seconds=PLACED_WITHIN_SECONDS,
    )
    assert {order_id: ledger.submissions()[order_id] for order_id in ids} == dict.fromkeys(ids, 1)
    assert handed_back(stack) == len(ids)
    wait_for(
        lambda: {stack.client.get(f"/orders/{i}").json()["status"] for i in ids} == {"placed"},
        what="the stranded orders settled",
        timeout_seconds=PLACED_WITHIN_SECONDS,
    )


def test_an_order_a_placer_claimed_is_left_to_the_processing_timeout(stack: RunningStack) -> None:
    claimed, unclaimed = strand(stack, 2, claimed=1)
    ledger = ExchangeLedger(stack.ledger_path)
    wait_for(
        lambda: unclaimed in ledger.submissions(),
        what="the unclaimed order placed",
        timeout_seconds=PLACED_WITHIN_SECONDS,
    )
    # A few more looks, each of which finds the claimed order's entry idle and leaves it.
    rounds = placer_metric(stack, "orders_stranded_check_rounds_total", outcome="done")
    wait_for(
        lambda: (
            placer_metric(stack, "orders_stranded_check_rounds_total", outcome="done") >= rounds + 3
        ),
        what="three more looks for stranded deliveries",
        timeout_seconds=PLACED_WITHIN_SECONDS,
    )
    assert handed_back(stack) == 1
    assert claimed not in ledger.submissions()
    assert stack.client.get(f"/orders/{claimed}").json()["status"] == "accepted"
