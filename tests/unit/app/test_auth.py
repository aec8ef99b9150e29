"""Client API keys: off by default, and when on, /orders needs one of them."""

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from core.config import Settings, settings
from tests.factories import market_order_body
from tests.unit.fakes import STORE, MemorySidecar


@pytest.fixture
def keys_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "API_KEYS", SecretStr("first-key, second-key"))


def test_without_api_keys_configured_no_key_is_needed(client: TestClient) -> None:
    assert client.post("/orders", json=market_order_body()).status_code == 201


@pytest.mark.usefixtures("keys_on")
@pytest.mark.parametrize("sent", [None, "", "wrong-key", "first-key, second-key"])
def test_a_missing_or_wrong_key_is_401_and_nothing_is_stored(
    client: TestClient, sidecar: MemorySidecar, sent: str | None
) -> None:
    headers = {} if sent is None else {"X-API-Key": sent}
    response = client.post("/orders", json=market_order_body(), headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "ApiKey"
    assert "X-API-Key" in response.json()["detail"]
    assert sidecar.stores[STORE] == {}


@pytest.mark.usefixtures("keys_on")
@pytest.mark.parametrize("key", ["first-key", "second-key"])
def test_each_configured_key_is_accepted(client: TestClient, key: str) -> None:
    response = client.post("/orders", json=market_order_body(), headers={"X-API-Key": key})
    assert response.status_code == 201
    order_id = response.json()["id"]
    assert client.get(f"/orders/{order_id}", headers={"X-API-Key": key}).status_code == 200


@pytest.mark.usefixtures("keys_on")
def test_reading_orders_needs_a_key_too(client: TestClient) -> None:
    created = client.post("/orders", json=market_order_body(), headers={"X-API-Key": "first-key"})
    order_id = created.json()["id"]
    assert client.get(f"/orders/{order_id}").status_code == 401
    assert client.get(f"/orders/{order_id}/events").status_code == 401


@pytest.mark.usefixtures("keys_on")
def test_health_and_docs_stay_open(client: TestClient) -> None:
    assert client.get("/health/live").status_code == 200
    assert client.get("/openapi.json").status_code == 200


def test_keys_are_read_from_a_comma_separated_list() -> None:
    configured = Settings(_env_file=None, API_KEYS=" key-one ,key-two,, ")
    assert configured.api_keys() == {"key-one", "key-two"}
    assert Settings(_env_file=None).api_keys() == frozenset()
    assert "key-one" not in repr(configured)  # kept out of logs and tracebacks
