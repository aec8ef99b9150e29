"""Fixtures of the unit tests: the sidecar's state API in memory, and the real repository over
it."""

import pytest

from core.repository import OrderRepository
from tests.unit.fakes import MemorySidecar, repository


@pytest.fixture
def sidecar() -> MemorySidecar:
    return MemorySidecar()


@pytest.fixture
def orders(sidecar: MemorySidecar) -> OrderRepository:
    return repository(sidecar)
