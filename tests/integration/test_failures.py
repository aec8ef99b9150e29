"""After validation, every failure is a fast 500 with the fixed body, and commits nothing."""

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.config import settings
from core.repository import OrderRepository
from core.sidecar import DaprSidecar, SidecarError
from devstack.config import StateStoreKind
from tests.factories import limit_order_body
from tests.integration.stack_fixtures import RunningStack, running_stack

PLACEMENT_FAILED = {"message": "Internal server error while placing the order"}


@pytest.fixture
def stack(state_store_kind: StateStoreKind, tmp_path: Path) -> Iterator[RunningStack]:
    """A stack of the test's own: these tests break it."""
    with running_stack(tmp_path, state_store_kind) as running:
        yield running


def assert_placement_fails(stack: RunningStack) -> None:
    response = stack.client.post("/orders", json=limit_order_body())
    assert response.status_code == 500
    assert response.json() == PLACEMENT_FAILED


def test_stopped_sidecar_gives_500_and_not_ready(stack: RunningStack) -> None:
    stack.stack.api.sidecar.kill()
    assert_placement_fails(stack)
    assert stack.client.get("/health/ready").status_code == 503


def test_hung_sidecar_gives_500_instead_of_hanging(stack: RunningStack) -> None:
    sidecar = stack.stack.api.sidecar
    os.kill(sidecar.pid, signal.SIGSTOP)
    try:
        # The client's own timeout (30 s) is far above the service's bound (2 s here).
        assert_placement_fails(stack)
    finally:
        os.kill(sidecar.pid, signal.SIGCONT)


def test_stopped_state_store_gives_500(stack: RunningStack) -> None:
    store = stack.stores.postgres or stack.stores.redis
    store.process.kill()
    assert_placement_fails(stack)


def test_stopped_broker_gives_500_and_commits_nothing(
    stack: RunningStack, state_store_kind: StateStoreKind
) -> None:
    before = stack.stores.stored_order_count()
    stack.stores.redis.process.kill()
    assert_placement_fails(stack)
    if state_store_kind is StateStoreKind.REDIS:
        stack.stores.restart_redis()  # the broker is also the store: look once it is back
    assert stack.stores.stored_order_count() == before


@pytest.mark.anyio
async def test_unreadable_store_is_an_error_not_a_missing_order(stack: RunningStack) -> None:
    # The sidecar's bulk read answers 200 with an error per key: taken for missing keys, it
    # made the placer drop accepted orders while the store restarted.
    store = stack.stores.postgres or stack.stores.redis
    store.process.kill()
    sidecar = DaprSidecar(
        stack.stack.placer.dapr_url, api_token=stack.options.dapr_api_token, timeout_seconds=5
    )
    try:
        with pytest.raises(SidecarError):
            await OrderRepository(sidecar, settings.PLACER_STATE_STORE).get_for_placement("x")
    finally:
        await sidecar.aclose()
