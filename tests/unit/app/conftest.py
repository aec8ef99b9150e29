"""The API under a test client: its real routes, acceptance and repository, over the sidecar's
state API in memory."""

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.deps import get_order_repository, get_pending_voids
from app.main import app
from app.voids import PendingVoids
from core.health import get_sidecar
from tests.unit.fakes import MemorySidecar, repository


@contextmanager
def serving(api: FastAPI, sidecar: MemorySidecar) -> Iterator[TestClient]:
    """`api` under a test client, over `sidecar`."""
    orders = repository(sidecar)
    voids = PendingVoids(orders)
    api.dependency_overrides[get_sidecar] = lambda: sidecar
    api.dependency_overrides[get_order_repository] = lambda: orders
    api.dependency_overrides[get_pending_voids] = lambda: voids
    with TestClient(api, raise_server_exceptions=False) as test_client:
        yield test_client
    api.dependency_overrides.clear()


@pytest.fixture
def client(sidecar: MemorySidecar) -> Iterator[TestClient]:
    """The API as made with the default settings: no API keys."""
    with serving(app, sidecar) as test_client:
        yield test_client
