"""The API's metrics and trace id, per request, through the app over the in-memory sidecar."""

import re

from fastapi.testclient import TestClient

from tests.factories import limit_order_body
from tests.telemetry import registry_value

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def count(method: str, route: str, status: str) -> float:
    return registry_value("orders_api_requests_total", method=method, route=route, status=status)


def test_a_created_order_is_counted_under_its_route(client: TestClient) -> None:
    created, accepted = count("POST", "/orders", "201"), registry_value("orders_accepted_total")
    response = client.post("/orders", json=limit_order_body())
    assert response.status_code == 201
    assert count("POST", "/orders", "201") == created + 1
    assert registry_value("orders_accepted_total") == accepted + 1


def test_paths_with_ids_share_their_routes_series(client: TestClient) -> None:
    before = count("GET", "/orders/{order_id}", "404")
    for order_id in ("0123abcd", "4567ef89"):
        assert client.get(f"/orders/{order_id}").status_code == 404
    assert count("GET", "/orders/{order_id}", "404") == before + 2
    unmatched = count("GET", "unmatched", "404")
    client.get("/no/such/path")
    assert count("GET", "unmatched", "404") == unmatched + 1


def test_invalid_orders_are_counted_as_422_and_timed(client: TestClient) -> None:
    before = count("POST", "/orders", "422")
    duration = "orders_api_request_duration_seconds_count"
    timed = registry_value(duration, method="POST", route="/orders")
    assert client.post("/orders", json={"type": "market"}).status_code == 422
    assert count("POST", "/orders", "422") == before + 1
    assert registry_value(duration, method="POST", route="/orders") == timed + 1


def test_the_answer_names_the_clients_trace(client: TestClient) -> None:
    response = client.post("/orders", json=limit_order_body(), headers={"traceparent": TRACEPARENT})
    assert response.headers["x-trace-id"] == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_without_a_trace_each_request_starts_its_own(client: TestClient) -> None:
    first = client.get("/health/live").headers["x-trace-id"]
    second = client.get("/health/live").headers["x-trace-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", first) and first != second
