"""Idempotency-Key on the real stores: a repeat returns the first order and creates nothing."""

import asyncio

import httpx

from placer.stock_exchange import ExchangeLedger
from tests.factories import limit_order_body
from tests.integration.stack_fixtures import RunningStack
from tests.polling import wait_for


def test_repeat_with_the_same_key_returns_the_first_order(healthy_stack: RunningStack) -> None:
    before = healthy_stack.stores.stored_order_count()
    headers = {"Idempotency-Key": "repeat-1"}
    first = healthy_stack.client.post("/orders", json=limit_order_body(), headers=headers)
    again = healthy_stack.client.post("/orders", json=limit_order_body(), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["created_at"] == first.json()["created_at"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert healthy_stack.stores.stored_order_count() == before + 1


def test_repeat_with_the_price_in_another_spelling_is_the_same_order(
    healthy_stack: RunningStack,
) -> None:
    before = healthy_stack.stores.stored_order_count()
    headers = {"Idempotency-Key": "repeat-spelling"}
    first = healthy_stack.client.post(
        "/orders", json=limit_order_body(limit_price=99.1), headers=headers
    )
    again = healthy_stack.client.post(
        "/orders", json=limit_order_body(limit_price="99.10"), headers=headers
    )
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.json()["limit_price"] == "99.10"
    assert again.headers["Idempotent-Replayed"] == "true"
    assert healthy_stack.stores.stored_order_count() == before + 1


def test_same_key_with_another_order_is_422(healthy_stack: RunningStack) -> None:
    headers = {"Idempotency-Key": "repeat-2"}
    first = healthy_stack.client.post("/orders", json=limit_order_body(), headers=headers)
    other = healthy_stack.client.post(
        "/orders", json=limit_order_body(quantity=99), headers=headers
    )
    assert first.status_code == 201
    assert other.status_code == 422
    assert other.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]


def test_concurrent_requests_with_one_key_make_one_order(healthy_stack: RunningStack) -> None:
    before = healthy_stack.stores.stored_order_count()

    async def post_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=healthy_stack.stack.api.url, timeout=30) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        "/orders", json=limit_order_body(), headers={"Idempotency-Key": "race"}
                    )
                    for _ in range(10)
                )
            )

    responses = asyncio.run(post_all())
    assert [response.status_code for response in responses] == [201] * 10
    [order_id] = {response.json()["id"] for response in responses}
    assert healthy_stack.stores.stored_order_count() == before + 1
    wait_for(
        lambda: order_id in ExchangeLedger(healthy_stack.ledger_path).submissions(),
        what="the one order placed",
        timeout_seconds=30,
    )
    assert ExchangeLedger(healthy_stack.ledger_path).submissions()[order_id] >= 1
