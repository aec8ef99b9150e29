"""The API under a test client, with an in-memory repository in place of the sidecar."""

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.deps import get_order_repository
from app.main import app
from tests.unit.fakes import MemoryOrders


@pytest.fixture
def orders() -> MemoryOrders:
    return MemoryOrders()


@contextmanager
def serving(api: FastAPI, orders: MemoryOrders) -> Iterator[TestClient]:
    api.dependency_overrides[get_order_repository] = lambda: orders
    with TestClient(api, raise_server_exceptions=False) as test_client:
        yield test_client
    api.dependency_overrides.clear()


@pytest.fixture
def client(orders: MemoryOrders) -> Iterator[TestClient]:
    """The API as made with the default settings: no API keys."""
    with serving(app, orders) as test_client:
        yield test_client
