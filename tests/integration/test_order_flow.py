"""An order through the real sidecar, on Redis and on PostgreSQL: stored, published, placed."""

import socket
import time
from typing import Any

import httpx
import pytest

from core.config import settings
from core.repository import order_key
from core.serving import UVICORN_KEEP_ALIVE_SECONDS
from core.signing import OrderSigner
from placer.stock_exchange import ExchangeLedger
from tests.factories import accepted_order, limit_order_body, market_order_body
from tests.integration.stack_fixtures import RunningStack
from tests.polling import wait_for
from tests.telemetry import scrape, value

PLACEMENT_DEADLINE_SECONDS = 30


def order_status(stack: RunningStack, order_id: str, status: str) -> dict[str, Any] | None:
    order: dict[str, Any] = stack.client.get(f"/orders/{order_id}").json()
    return order if order["status"] == status else None


def test_committed_order_is_in_the_store_and_reaches_the_exchange(
    healthy_stack: RunningStack,
) -> None:
    response = healthy_stack.client.post("/orders", json=limit_order_body())
    assert response.status_code == 201
    created = response.json()

    stored = healthy_stack.stores.stored_order(created["id"])
    assert stored is not None
    # The price as the API writes it: a string with two places.
    assert {key: stored[key] for key in limit_order_body()} == {
        **limit_order_body(),
        "limit_price": "101.25",
    }

    placed = wait_for(
        lambda: order_status(healthy_stack, created["id"], "placed"),
        what="order placed",
        timeout_seconds=PLACEMENT_DEADLINE_SECONDS,
    )
    assert {key: placed[key] for key in created if key != "status"} == {
        key: created[key] for key in created if key != "status"
    }
    assert ExchangeLedger(healthy_stack.ledger_path).submissions()[created["id"]] == 1
    events = healthy_stack.client.get(f"/orders/{created['id']}/events").json()
    assert [event["kind"] for event in events] == ["accepted", "placed"]
    assert events[0]["at"] == created["created_at"]


def test_an_order_published_by_anyone_but_the_api_never_reaches_the_exchange(
    healthy_stack: RunningStack,
) -> None:
    """The placer claims a signed order without reading it first; an order written to the
    topic by anyone else (here through the placer's sidecar, which may publish), unsigned or
    signed with another key, is read first, and dropped: the store does not hold it."""
    unsigned = accepted_order().model_dump(mode="json")
    signed_elsewhere = OrderSigner("not the key").signed(accepted_order().model_dump(mode="json"))
    placer = healthy_stack.stack.placer
    invalid = "orders_placement_attempts_total"
    dropped_before = value(scrape(placer.metrics_url), invalid, outcome="invalid")
    for order in (unsigned, signed_elsewhere):
        response = httpx.post(
            f"{placer.dapr_url}/v1.0/publish/{settings.PUBSUB}/{settings.ORDERS_TOPIC}",
            json=order, headers={"dapr-api-token": healthy_stack.options.dapr_api_token or ""},
            timeout=10,
        )  # fmt: skip
        assert response.status_code == httpx.codes.NO_CONTENT

    def both_dropped() -> bool:
        dropped = value(scrape(placer.metrics_url), invalid, outcome="invalid")
        return dropped - dropped_before >= 2

    wait_for(both_dropped, what="forged orders dropped", timeout_seconds=PLACEMENT_DEADLINE_SECONDS)
    submissions = ExchangeLedger(healthy_stack.ledger_path).submissions()
    assert unsigned["id"] not in submissions and signed_elsewhere["id"] not in submissions
    assert healthy_stack.stores.stored_order(unsigned["id"]) is None


def test_every_order_of_a_batch_is_placed_once(healthy_stack: RunningStack) -> None:
    bodies = [market_order_body(quantity=n) for n in range(1, 21)]
    ids = []
    for body in bodies:
        response = healthy_stack.client.post("/orders", json=body)
        assert response.status_code == 201
        ids.append(response.json()["id"])

    def all_placed() -> bool:
        submissions = ExchangeLedger(healthy_stack.ledger_path).submissions()
        return all(order_id in submissions for order_id in ids)

    wait_for(all_placed, what="20 orders placed", timeout_seconds=PLACEMENT_DEADLINE_SECONDS)
    submissions = ExchangeLedger(healthy_stack.ledger_path).submissions()
    assert [submissions[order_id] for order_id in ids] == [1] * len(ids)

    def all_marked_placed() -> bool:
        return all(order_status(healthy_stack, order_id, "placed") for order_id in ids)

    wait_for(all_marked_placed, what="20 orders marked placed", timeout_seconds=30)


def test_price_sent_as_a_string_is_stored_placed_and_answered_as_one(
    healthy_stack: RunningStack,
) -> None:
    response = healthy_stack.client.post("/orders", json=limit_order_body(limit_price="99.1"))
    assert response.status_code == 201
    order_id = response.json()["id"]
    assert response.json()["limit_price"] == "99.10"
    stored = healthy_stack.stores.stored_order(order_id)
    assert stored is not None
    assert stored["limit_price"] == "99.10"
    placed = wait_for(
        lambda: order_status(healthy_stack, order_id, "placed"),
        what="order placed",
        timeout_seconds=PLACEMENT_DEADLINE_SECONDS,
    )
    assert placed["limit_price"] == "99.10"


def test_order_stored_with_a_numeric_price_still_reads_back(healthy_stack: RunningStack) -> None:
    order = accepted_order(limit_price="12.30")
    earlier = {**order.model_dump(mode="json"), "limit_price": 12.3}
    response = httpx.post(
        f"{healthy_stack.stack.api.dapr_url}/v1.0/state/{settings.STATE_STORE}",
        json=[{"key": order_key(order.id), "value": earlier}],
        headers={"dapr-api-token": healthy_stack.options.dapr_api_token or ""},
        timeout=10,
    )
    assert response.status_code == 204, response.text
    read = healthy_stack.client.get(f"/orders/{order.id}")
    assert read.status_code == 200
    assert read.json()["limit_price"] == "12.30"


@pytest.mark.parametrize(
    "order_id",
    [
        "00000000-0000-4000-8000-000000000000",
        "does-not-exist-123",
        "x",
        "ORDER_1",
        "order-events-x",
        "..%2Fsecrets",
        "a%7C%7Cb",  # "a||b": the store's key separator
        "k" * 64,
    ],
)
def test_any_id_that_is_no_order_is_404(healthy_stack: RunningStack, order_id: str) -> None:
    assert healthy_stack.client.get(f"/orders/{order_id}").status_code == 404
    assert healthy_stack.client.get(f"/orders/{order_id}/events").status_code == 404


def test_overlong_order_id_is_422(healthy_stack: RunningStack) -> None:
    assert healthy_stack.client.get(f"/orders/{'k' * 65}").status_code == 422


def test_document_asks_for_no_key_with_api_keys_off(healthy_stack: RunningStack) -> None:
    spec = healthy_stack.client.get("/openapi.json").json()
    assert "securitySchemes" not in spec.get("components", {})
    operations = [op for item in spec["paths"].values() for op in item.values()]
    assert operations
    assert all("security" not in operation for operation in operations)


def test_invalid_order_is_422_and_nothing_is_stored(healthy_stack: RunningStack) -> None:
    before = healthy_stack.stores.stored_order_count()
    response = healthy_stack.client.post("/orders", json=limit_order_body(limit_price=None))
    assert response.status_code == 422
    assert healthy_stack.stores.stored_order_count() == before


def test_readiness_reports_a_ready_sidecar(healthy_stack: RunningStack) -> None:
    assert healthy_stack.client.get("/health/ready").json() == {"status": "ok"}


def test_a_connection_reused_after_idle_seconds_is_answered(healthy_stack: RunningStack) -> None:
    """A client's pool reuses a connection that sat idle longer than uvicorn's default
    keep-alive (5 s): the API must not have closed it (a request sent as it closes is reset)."""
    api = httpx.URL(healthy_stack.stack.api.url)
    assert settings.API_KEEP_ALIVE_SECONDS > UVICORN_KEEP_ALIVE_SECONDS + 1
    with socket.create_connection((api.host, api.port), timeout=10) as connection:
        assert _get_live(connection).startswith(b"HTTP/1.1 200")
        time.sleep(UVICORN_KEEP_ALIVE_SECONDS + 1)
        assert _get_live(connection).startswith(b"HTTP/1.1 200")


def _get_live(connection: socket.socket) -> bytes:
    connection.sendall(b"GET /health/live HTTP/1.1\r\nHost: api\r\n\r\n")
    return connection.recv(4096)
