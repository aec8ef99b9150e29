"""Client API keys: off by default, and when on, /orders needs one of them; the OpenAPI
document declares the key exactly when it is needed."""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from app.main import create_app
from core.config import Settings, settings
from tests.factories import market_order_body
from tests.unit.app.conftest import serving
from tests.unit.fakes import STORE, MemorySidecar


@pytest.fixture
def keyed_client(monkeypatch: pytest.MonkeyPatch, sidecar: MemorySidecar) -> Iterator[TestClient]:
    """The API made with two keys configured (settings are read when the app is made)."""
    monkeypatch.setattr(settings, "API_KEYS", SecretStr("first-key, second-key"))
    with serving(create_app(), sidecar) as test_client:
        yield test_client


def operations(spec: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    return [
        operation
        for path, item in spec["paths"].items()
        if path.startswith(prefix)
        for operation in item.values()
    ]


def test_without_api_keys_configured_no_key_is_needed(client: TestClient) -> None:
    assert client.post("/orders", json=market_order_body()).status_code == 201


def test_without_api_keys_the_document_asks_for_no_key(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "securitySchemes" not in spec.get("components", {})
    for operation in operations(spec, "/"):
        assert "security" not in operation
        assert "401" not in operation["responses"]


def test_with_api_keys_the_document_asks_for_one_on_orders_only(keyed_client: TestClient) -> None:
    spec = keyed_client.get("/openapi.json").json()
    scheme = spec["components"]["securitySchemes"]["APIKeyHeader"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "X-API-Key")
    orders = operations(spec, "/orders")
    assert len(orders) == 3
    for operation in orders:
        assert operation["security"] == [{"APIKeyHeader": []}]
        assert "401" in operation["responses"]
    for operation in operations(spec, "/health"):
        assert "security" not in operation


@pytest.mark.parametrize("sent", [None, "", "wrong-key", "first-key, second-key"])
def test_a_missing_or_wrong_key_is_401_and_nothing_is_stored(
    keyed_client: TestClient, sidecar: MemorySidecar, sent: str | None
) -> None:
    headers = {} if sent is None else {"X-API-Key": sent}
    response = keyed_client.post("/orders", json=market_order_body(), headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "ApiKey"
    assert "X-API-Key" in response.json()["detail"]
    assert sidecar.stores[STORE] == {}


@pytest.mark.parametrize("key", ["first-key", "second-key"])
def test_each_configured_key_is_accepted(keyed_client: TestClient, key: str) -> None:
    headers = {"X-API-Key": key}
    response = keyed_client.post("/orders", json=market_order_body(), headers=headers)
    assert response.status_code == 201
    order_id = response.json()["id"]
    assert keyed_client.get(f"/orders/{order_id}", headers=headers).status_code == 200


def test_reading_orders_needs_a_key_too(keyed_client: TestClient) -> None:
    headers = {"X-API-Key": "first-key"}
    created = keyed_client.post("/orders", json=market_order_body(), headers=headers)
    order_id = created.json()["id"]
    assert keyed_client.get(f"/orders/{order_id}").status_code == 401
    assert keyed_client.get(f"/orders/{order_id}/events").status_code == 401
    # Unknown ids too: without a key, nothing tells which orders exist.
    assert keyed_client.get("/orders/not-an-order").status_code == 401


def test_health_and_docs_stay_open(keyed_client: TestClient) -> None:
    assert keyed_client.get("/health/live").status_code == 200
    assert keyed_client.get("/openapi.json").status_code == 200


def test_keys_are_read_from_a_comma_separated_list() -> None:
    configured = Settings(_env_file=None, API_KEYS=" key-one ,key-two,, ")
    assert configured.api_keys() == {"key-one", "key-two"}
    assert Settings(_env_file=None).api_keys() == frozenset()
    assert "key-one" not in repr(configured)  # kept out of logs and tracebacks
