"""An order through the real sidecar, on Redis and on PostgreSQL: stored, published, placed."""

from typing import Any

from placer.stock_exchange import ExchangeLedger
from tests.factories import limit_order_body, market_order_body
from tests.integration.stack_fixtures import RunningStack
from tests.polling import wait_for

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
    assert {key: stored[key] for key in limit_order_body()} == limit_order_body()

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


def test_unknown_order_is_404(healthy_stack: RunningStack) -> None:
    unknown = "/orders/00000000-0000-4000-8000-000000000000"
    assert healthy_stack.client.get(unknown).status_code == 404
    assert healthy_stack.client.get(f"{unknown}/events").status_code == 404


def test_invalid_order_is_422_and_nothing_is_stored(healthy_stack: RunningStack) -> None:
    before = healthy_stack.stores.stored_order_count()
    response = healthy_stack.client.post("/orders", json=limit_order_body(limit_price=None))
    assert response.status_code == 422
    assert healthy_stack.stores.stored_order_count() == before


def test_readiness_reports_a_ready_sidecar(healthy_stack: RunningStack) -> None:
    assert healthy_stack.client.get("/health/ready").json() == {"status": "ok"}
