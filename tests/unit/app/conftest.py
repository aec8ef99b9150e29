"""The API under a test client: its real routes, acceptance and repository, over the sidecar's
state API in memory."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.deps import get_order_repository, get_pending_voids
from app.main import app
from app.voids import PendingVoids
from core.health import get_sidecar
from tests.unit.fakes import MemorySidecar, repository


@pytest.fixture
def sidecar() -> MemorySidecar:
    return MemorySidecar()


@pytest.fixture
def client(sidecar: MemorySidecar) -> Iterator[TestClient]:
    orders = repository(sidecar)
    voids = PendingVoids(orders)
    app.dependency_overrides[get_sidecar] = lambda: sidecar
    app.dependency_overrides[get_order_repository] = lambda: orders
    app.dependency_overrides[get_pending_voids] = lambda: voids
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
    app.dependency_overrides.clear()
