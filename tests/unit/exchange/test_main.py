"""The stand-in service's API: a client order id is placed once however often it is sent, the
control file breaks it as it breaks the in-process stand-in, and the counts tests read."""

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.config import settings
from exchange.main import app
from placer import stock_exchange
from placer.stock_exchange import ExchangeLedger
from tests.factories import accepted_order


@pytest.fixture
def control(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The control file: absent until a test writes it."""
    path = tmp_path / "control.json"
    monkeypatch.setattr(settings, "EXCHANGE_CONTROL_PATH", path)
    return path


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ExchangeLedger:
    ledger = ExchangeLedger(tmp_path / "ledger.sqlite3")
    monkeypatch.setattr(stock_exchange, "_ledger", ledger)
    monkeypatch.setattr(settings, "EXCHANGE_LATENCY_SECONDS", 0)
    monkeypatch.setattr(settings, "EXCHANGE_FAILURE_RATE", 0.0)
    return ledger


@pytest.fixture
def client(ledger: ExchangeLedger, control: Path) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


def test_a_client_order_id_is_placed_once_and_repeats_get_the_first_acceptance(
    client: TestClient, ledger: ExchangeLedger
) -> None:
    order, other = accepted_order(), accepted_order()
    body = order.model_dump(mode="json")
    first = client.post("/orders", json=body)
    assert first.status_code == 201
    assert first.json()["client_order_id"] == order.id
    repeat = client.post("/orders", json=body)
    assert repeat.status_code == 200
    assert repeat.json() == {**first.json(), "submissions": 2}
    assert client.post("/orders", json=other.model_dump(mode="json")).status_code == 201
    assert ledger.submissions() == {order.id: 2, other.id: 1}
    assert client.get(f"/orders/{order.id}").json() == repeat.json()
    assert client.get("/placements").json() == {
        "orders": 2,
        "submissions": 3,
        "duplicates": {order.id: 2},
        "accepted": {order.id: 2, other.id: 1},
    }


def test_an_id_never_accepted_is_not_found(client: TestClient) -> None:
    assert client.get(f"/orders/{accepted_order().id}").status_code == 404
    assert client.get("/placements").json() == {
        "orders": 0, "submissions": 0, "duplicates": {}, "accepted": {}
    }  # fmt: skip


def test_a_body_that_is_no_order_is_refused_and_records_nothing(
    client: TestClient, ledger: ExchangeLedger
) -> None:
    body = accepted_order().model_dump(mode="json") | {"quantity": -1}
    assert client.post("/orders", json=body).status_code == 422
    assert ledger.submissions() == {}


def test_the_control_file_fails_every_call_while_it_says_so(
    client: TestClient, ledger: ExchangeLedger, control: Path
) -> None:
    order = accepted_order()
    body = order.model_dump(mode="json")
    control.write_text(json.dumps({"failure_rate": 1.0}))
    answer = client.post("/orders", json=body)
    assert answer.status_code == 503
    assert order.id in answer.json()["detail"]
    assert ledger.submissions() == {}
    control.unlink()
    assert client.post("/orders", json=body).status_code == 201


def test_a_late_answer_comes_after_the_order_is_accepted(
    client: TestClient, ledger: ExchangeLedger, control: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The waits of the stand-in, with what its ledger held at each: the answer delay comes
    # after the acceptance, so an answer lost to the caller's timeout loses no order.
    waits: list[tuple[float, dict[str, int]]] = []
    monkeypatch.setattr(
        time, "sleep", lambda seconds: waits.append((seconds, ledger.submissions()))
    )
    control.write_text(json.dumps({"latency_seconds": 0.5, "answer_delay_seconds": 30}))
    order = accepted_order()
    assert client.post("/orders", json=order.model_dump(mode="json")).status_code == 201
    assert waits == [(0.5, {}), (30, {order.id: 1})]


def test_health(client: TestClient) -> None:
    assert client.get("/health/live").json() == {"status": "ok"}
    assert client.get("/health/ready").json() == {"status": "ok"}
