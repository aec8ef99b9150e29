"""The API under a test client, with an in-memory repository in place of the sidecar."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.deps import get_order_repository
from app.main import app
from tests.unit.fakes import MemoryOrders


@pytest.fixture
def orders() -> MemoryOrders:
    return MemoryOrders()


@pytest.fixture
def client(orders: MemoryOrders) -> Iterator[TestClient]:
    app.dependency_overrides[get_order_repository] = lambda: orders
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
    app.dependency_overrides.clear()
