from collections.abc import Iterator

import pytest

from devstack.config import StateStoreKind
from tests.integration.stack_fixtures import RunningStack, running_stack


@pytest.fixture(scope="module", params=list(StateStoreKind), ids=lambda kind: kind.value)
def state_store_kind(request: pytest.FixtureRequest) -> StateStoreKind:
    kind: StateStoreKind = request.param
    return kind


@pytest.fixture(scope="module")
def healthy_stack(
    state_store_kind: StateStoreKind, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    """A stack whose exchange never fails and answers at once, shared by a module's tests."""
    tmp = tmp_path_factory.mktemp(f"stack-{state_store_kind.value}")
    env = {"EXCHANGE_FAILURE_RATE": "0", "EXCHANGE_LATENCY_SECONDS": "0.05"}
    with running_stack(tmp, state_store_kind, app_env=env) as stack:
        yield stack
