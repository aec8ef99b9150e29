"""The exchange's slowness and failures never reach POST /orders; exhausted retries end in the
dead-letter topic, and a re-drive places the order."""

import os
import subprocess
from pathlib import Path

import httpx

from core.config import PROJECT_ROOT
from devstack.config import StateStoreKind
from devstack.processes import ProcessGroup
from placer.stock_exchange import ExchangeLedger
from tests.factories import limit_order_body, market_order_body
from tests.integration.stack_fixtures import (
    ONE_CALL_A_DELIVERY,
    fast_retry_components,
    running_stack,
    start_stores,
)
from tests.polling import wait_for

FAILING = {"EXCHANGE_FAILURE_RATE": "1", **ONE_CALL_A_DELIVERY}
HEALTHY = {"EXCHANGE_FAILURE_RATE": "0", "EXCHANGE_LATENCY_SECONDS": "0.05"}


def test_orders_are_accepted_while_the_exchange_fails_every_call(tmp_path: Path) -> None:
    with running_stack(tmp_path, StateStoreKind.REDIS, app_env=FAILING) as stack:
        ids = []
        for quantity in range(1, 21):
            response = stack.client.post("/orders", json=market_order_body(quantity=quantity))
            assert response.status_code == 201
            ids.append(response.json()["id"])
        statuses = {stack.client.get(f"/orders/{order_id}").json()["status"] for order_id in ids}
        assert statuses == {"accepted"}
        assert ExchangeLedger(stack.ledger_path).submissions() == {}


def test_a_hanging_exchange_does_not_hold_up_the_answer(tmp_path: Path) -> None:
    # Each exchange call takes 60 s: the 201 comes back while the placement is still under way.
    slow = {"EXCHANGE_FAILURE_RATE": "0", "EXCHANGE_LATENCY_SECONDS": "60"}
    with running_stack(tmp_path, StateStoreKind.REDIS, app_env=slow) as stack:
        response = stack.client.post("/orders", json=limit_order_body())
        assert response.status_code == 201
        assert response.json()["status"] == "accepted"
        assert not ExchangeLedger(stack.ledger_path).submissions()


def test_dead_lettered_order_is_marked_failed_and_redrive_places_it(tmp_path: Path) -> None:
    components = fast_retry_components(tmp_path / "components")
    with ProcessGroup(tmp_path) as stores_group:
        stores = start_stores(stores_group, StateStoreKind.REDIS, tmp_path / "data")
        with running_stack(
            tmp_path / "failing", StateStoreKind.REDIS, stores=stores,
            components=components, app_env=FAILING,
        ) as stack:  # fmt: skip
            order_id = stack.client.post("/orders", json=limit_order_body()).json()["id"]
            failed = wait_for(
                lambda: _order_with_status(stack.client, order_id, "failed"),
                what="order dead-lettered",
                timeout_seconds=60,
            )
            assert failed["failure_reason"] == "placement retries exhausted"

        # The exchange is back: `./run redrive` sends the order through again.
        with running_stack(
            tmp_path / "healthy", StateStoreKind.REDIS, stores=stores,
            components=components, app_env=HEALTHY,
        ) as stack:  # fmt: skip
            env = {
                **os.environ,
                **stack.options.token_env(),
                "PLACER_DAPR_HTTP_PORT": str(stack.stack.placer.ports.dapr_http),
            }
            subprocess.run([str(PROJECT_ROOT / "run"), "redrive"], env=env, check=True, timeout=120)
            placed = wait_for(
                lambda: _order_with_status(stack.client, order_id, "placed"),
                what="re-driven order placed",
                timeout_seconds=60,
            )
            assert placed["failure_reason"] is None
            assert ExchangeLedger(stack.ledger_path).submissions() == {order_id: 1}
            history = stack.client.get(f"/orders/{order_id}/events").json()
            kinds = [event["kind"] for event in history]
            # One delivery and two retries (the test's policy) failed before the dead letter.
            assert kinds == [
                "accepted",
                *["attempt_failed"] * 3,
                "dead_lettered",
                "redriven",
                "placed",
            ]
            assert [event["at"] for event in history] == sorted(e["at"] for e in history)


def _order_with_status(
    client: httpx.Client, order_id: str, status: str
) -> dict[str, object] | None:
    order: dict[str, object] = client.get(f"/orders/{order_id}").json()
    return order if order["status"] == status else None
