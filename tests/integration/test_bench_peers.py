"""The benchmark's floor and naive peer on a real Redis: they store what they answer 201 for,
and refuse what the service refuses."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient

from bench import peers
from bench.config import bench_settings
from devstack.processes import ProcessGroup, free_port
from devstack.stores import RedisServer, start_redis
from placer import stock_exchange
from placer.stock_exchange import ExchangeLedger
from tests.factories import limit_order_body


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    tmp: Path = tmp_path_factory.mktemp("bench-peers")
    with ProcessGroup(tmp) as group:
        yield start_redis(group, tmp / "redis", free_port())


@pytest.fixture
def store(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[redis.Redis]:
    monkeypatch.setattr(bench_settings, "REDIS_URL", f"redis://{redis_server.address}/0")
    # The naive peer's exchange calls go to a ledger of this test's own.
    monkeypatch.setattr(stock_exchange, "_ledger", ExchangeLedger(tmp_path / "ledger.sqlite3"))
    with redis.Redis(port=redis_server.port, socket_timeout=5) as client:
        client.flushall()
        yield client


@pytest.mark.parametrize("app", [peers.floor, peers.naive], ids=["floor", "naive"])
def test_order_answered_201_is_stored_with_its_event(app: FastAPI, store: redis.Redis) -> None:
    with TestClient(app) as client:
        answers = [client.post("/orders", json=limit_order_body()) for _ in range(3)]
    created = [a.json() for a in answers if a.status_code == 201]
    assert created, [a.text for a in answers]  # the naive peer fails one call in ten
    for order in created:
        stored = json.loads(store.get(f"order-{order['id']}") or b"{}")
        assert stored["id"] == order["id"] and stored["quantity"] == order["quantity"]
    assert store.xlen("orders") == len(created)


def test_invalid_order_is_refused_and_nothing_stored(store: redis.Redis) -> None:
    with TestClient(peers.floor) as client:
        response = client.post("/orders", json=limit_order_body(limit_price=None))
    assert response.status_code == 422
    assert store.dbsize() == 0
