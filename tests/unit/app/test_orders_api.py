"""The API's HTTP contract, over the sidecar's state API in memory."""

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from core.config import settings
from core.repository import order_key
from core.sidecar import SidecarError
from tests.factories import accepted_order, limit_order_body, market_order_body
from tests.unit.fakes import STORE, MemorySidecar, store_order

PLACEMENT_FAILED = {"message": "Internal server error while placing the order"}


def test_created_order_has_id_time_status_and_every_field_sent(
    client: TestClient, sidecar: MemorySidecar
) -> None:
    body = limit_order_body()
    response = client.post("/orders", json=body)
    assert response.status_code == 201
    created = response.json()
    assert {key: created[key] for key in body} == {**body, "limit_price": "101.25"}
    assert created["status"] == "accepted"
    assert datetime.fromisoformat(created["created_at"]).utcoffset() == timedelta(0)
    assert sidecar.value(order_key(created["id"])) == created


@pytest.mark.parametrize(
    ("sent", "answered"), [("99.10", "99.10"), ("99.1", "99.10"), (99.1, "99.10")]
)
def test_price_is_taken_as_number_or_string_and_answered_with_two_places(
    client: TestClient, sent: object, answered: str
) -> None:
    response = client.post("/orders", json=limit_order_body(limit_price=sent))
    assert response.status_code == 201
    created = response.json()
    assert created["limit_price"] == answered
    assert client.get(f"/orders/{created['id']}").json()["limit_price"] == answered


@pytest.mark.parametrize("price", ["1e3", " 5", "NaN", "Infinity", "", "-0", "+5", True])
def test_price_in_another_form_is_422_at_limit_price(client: TestClient, price: object) -> None:
    response = client.post("/orders", json=limit_order_body(limit_price=price))
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "limit_price"]


def test_market_order_is_created_without_limit_price(client: TestClient) -> None:
    response = client.post("/orders", json=market_order_body())
    assert response.status_code == 201
    assert response.json()["limit_price"] is None


def test_invalid_order_is_422_with_the_reason_and_nothing_is_stored(
    client: TestClient, sidecar: MemorySidecar
) -> None:
    response = client.post("/orders", json=market_order_body(limit_price=10))
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "limit_price"]
    assert "must not be set for market orders" in error["msg"]
    assert sidecar.stores[STORE] == {}


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"type": "limit",', "application/json"),
        (b"[]", "application/json"),
        (b"type=limit", "application/x-www-form-urlencoded"),
        (b"", "application/json"),
    ],
)
def test_malformed_body_is_422(client: TestClient, content: bytes, content_type: str) -> None:
    response = client.post("/orders", content=content, headers={"content-type": content_type})
    assert response.status_code == 422


def test_oversized_body_is_413_before_validation(
    client: TestClient, sidecar: MemorySidecar
) -> None:
    body = limit_order_body(padding="x" * settings.MAX_BODY_BYTES)
    response = client.post("/orders", json=body)
    assert response.status_code == 413
    assert sidecar.stores[STORE] == {}


def test_oversized_chunked_body_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(settings.MAX_BODY_BYTES // 1024 + 2):
            yield b" " * 1024

    response = client.post(
        "/orders", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


@pytest.mark.parametrize(
    "failure", [SidecarError("sidecar gone"), RuntimeError("a bug"), TimeoutError()]
)
def test_any_failure_after_validation_is_500_with_the_fixed_message(
    client: TestClient, sidecar: MemorySidecar, failure: Exception
) -> None:
    sidecar.failure = failure
    response = client.post("/orders", json=limit_order_body())
    assert response.status_code == 500
    assert response.json() == PLACEMENT_FAILED
    assert "sidecar gone" not in response.text


def test_read_order_returns_it_with_its_status(client: TestClient, sidecar: MemorySidecar) -> None:
    order = accepted_order()
    store_order(sidecar, order)
    response = client.get(f"/orders/{order.id}")
    assert response.status_code == 200
    assert response.json() == order.model_dump(mode="json")


def test_unknown_order_is_404(client: TestClient) -> None:
    assert client.get("/orders/0b7c4f0e-4c1e-4ab0-9a53-5d0f4d2b0f11").status_code == 404


@pytest.mark.parametrize(
    "order_id",
    [
        "does-not-exist-123",
        "x",
        "NOT_AN_ID",
        "0B7C4F0E-4C1E-4AB0-9A53-5D0F4D2B0F11",
        "%20",
        "k" * 64,
    ],
)
def test_any_id_that_is_no_order_id_is_404_without_reading_the_store(
    client: TestClient, sidecar: MemorySidecar, order_id: str
) -> None:
    sidecar.failure = SidecarError("the store must not be read")  # a read would be a 500
    assert client.get(f"/orders/{order_id}").status_code == 404
    assert client.get(f"/orders/{order_id}/events").status_code == 404


def test_paths_that_reach_outside_an_order_are_404(client: TestClient) -> None:
    assert client.get("/orders/..%2Fsecrets").status_code == 404
    assert client.get("/orders/a/b").status_code == 404


def test_overlong_order_id_is_422(client: TestClient) -> None:
    response = client.get(f"/orders/{'k' * 65}")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "order_id"]


def test_failed_read_is_500_without_the_cause(client: TestClient, sidecar: MemorySidecar) -> None:
    sidecar.failure = SidecarError("store down at 10.0.0.1")
    response = client.get("/orders/0b7c4f0e-4c1e-4ab0-9a53-5d0f4d2b0f11")
    assert response.status_code == 500
    assert "10.0.0.1" not in response.text


def test_openapi_documents_the_order_contract(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    post = spec["paths"]["/orders"]["post"]
    assert set(post["responses"]) >= {"201", "422", "500"}
    assert "/orders/{order_id}" in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_idempotency_key_replays_the_first_order(
    client: TestClient, sidecar: MemorySidecar
) -> None:
    headers = {"Idempotency-Key": "abc"}
    first = client.post("/orders", json=limit_order_body(), headers=headers)
    again = client.post("/orders", json=limit_order_body(), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(sidecar.calls_to("execute_transaction")) == 1


def test_idempotency_key_replays_the_same_price_in_another_spelling(
    client: TestClient, sidecar: MemorySidecar
) -> None:
    headers = {"Idempotency-Key": "spelling"}
    first = client.post("/orders", json=limit_order_body(limit_price=99.1), headers=headers)
    again = client.post("/orders", json=limit_order_body(limit_price="99.10"), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(sidecar.calls_to("execute_transaction")) == 1


def test_idempotency_key_reused_for_another_order_is_422(client: TestClient) -> None:
    headers = {"Idempotency-Key": "abc"}
    assert client.post("/orders", json=limit_order_body(), headers=headers).status_code == 201
    other = client.post("/orders", json=market_order_body(), headers=headers)
    assert other.status_code == 422
    [error] = other.json()["detail"]
    assert error["loc"] == ["header", "Idempotency-Key"]
    assert "different order" in error["msg"]


def test_overlong_idempotency_key_is_422(client: TestClient) -> None:
    headers = {"Idempotency-Key": "k" * (settings.MAX_IDEMPOTENCY_KEY_LENGTH + 1)}
    assert client.post("/orders", json=limit_order_body(), headers=headers).status_code == 422
