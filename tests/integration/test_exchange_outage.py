"""A down exchange on the real stack: the placer holds the orders' deliveries until it is back,
so no order spends its retries against it; only orders past the maximum age are given up.

The retry policy is the quick one of the dead-letter tests (two retries 100 ms apart): without
the hold, every order delivered during the outage would be dead-lettered within a second."""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devstack.config import StateStoreKind
from placer.stock_exchange import ExchangeLedger
from tests.factories import limit_order_body
from tests.integration.stack_fixtures import (
    RunningStack,
    fast_retry_components,
    running_stack,
    set_pubsub_metadata,
)
from tests.polling import wait_for
from tests.telemetry import log_lines, scrape, value

PLACED_TIMEOUT_SECONDS = 60
OUTAGE_SETTINGS = {
    "EXCHANGE_LATENCY_SECONDS": "0.05",
    "EXCHANGE_FAILURE_RATE": "0",
    # Few orders in these tests: three failed calls in a row tell that the exchange is down.
    "PLACER_BREAKER_FAILURES": "3",
    "PLACER_BREAKER_PROBE_SECONDS": "0.5",
}


class Outage:
    def __init__(self, stack: RunningStack, control: Path) -> None:
        self.stack, self.control = stack, control

    def begin(self) -> None:
        self.control.write_text(json.dumps({"failure_rate": 1.0}))

    def end(self) -> None:
        self.control.unlink()

    def placer_metric(self, name: str, **labels: str) -> float:
        return value(scrape(self.stack.stack.placer.metrics_url), name, **labels)

    def order(self, order_id: str) -> dict[str, object]:
        order: dict[str, object] = self.stack.client.get(f"/orders/{order_id}").json()
        return order

    def post(self, count: int) -> list[str]:
        ids = []
        for quantity in range(1, count + 1):
            response = self.stack.client.post("/orders", json=limit_order_body(quantity=quantity))
            assert response.status_code == 201
            ids.append(response.json()["id"])
        return ids

    def wait_until_held(self, count: int) -> None:
        wait_for(
            lambda: self.placer_metric("orders_held") == count,
            what=f"{count} deliveries held",
            timeout_seconds=PLACED_TIMEOUT_SECONDS,
        )

    def wait_until_settled(self, ids: list[str], status: str) -> None:
        wait_for(
            lambda: all(self.order(order_id)["status"] == status for order_id in ids),
            what=f"every order {status}",
            timeout_seconds=PLACED_TIMEOUT_SECONDS,
        )


@contextmanager
def exchange_outage(tmp: Path, components: Path, **settings: str) -> Iterator[Outage]:
    control = tmp / "exchange-control.json"
    env = {**OUTAGE_SETTINGS, "EXCHANGE_CONTROL_PATH": str(control), **settings}
    with running_stack(
        tmp / "stack", StateStoreKind.REDIS, components=components, app_env=env
    ) as stack:
        yield Outage(stack, control)


def quick_redelivery(components: Path) -> Path:
    """Redelivers a message not acknowledged for 4 s, as a crashed placer's, while its first
    delivery is still held."""
    return set_pubsub_metadata(components, {"processingTimeout": "4s", "redeliverInterval": "1000"})


def test_orders_wait_out_an_outage_and_none_is_dead_lettered(tmp_path: Path) -> None:
    components = fast_retry_components(tmp_path / "components")
    with exchange_outage(tmp_path, components) as outage:
        outage.begin()
        ids = outage.post(10)
        outage.wait_until_held(len(ids))
        assert outage.placer_metric("orders_exchange_breaker_state", state="closed") == 0
        assert {outage.order(order_id)["status"] for order_id in ids} == {"accepted"}
        outage.end()
        outage.wait_until_settled(ids, "placed")
        assert outage.placer_metric("orders_dead_lettered_total") == 0
        assert outage.placer_metric("orders_exchange_breaker_state", state="closed") == 1
        assert outage.placer_metric("orders_held") == 0
        assert ExchangeLedger(outage.stack.ledger_path).submissions() == dict.fromkeys(ids, 1)
        history = outage.stack.client.get(f"/orders/{ids[-1]}/events").json()
        kinds = [event["kind"] for event in history]
        assert (kinds[0], kinds[-1], "dead_lettered" in kinds) == ("accepted", "placed", False)
        # What an operator reads in the placer's log: down, then back.
        log_path = outage.stack.stack.placer.app.log_path
        assert log_path is not None
        messages = [str(line["message"]) for line in log_lines(log_path)]
        down = next(i for i, m in enumerate(messages) if m.startswith("the exchange is down"))
        back = next(i for i, m in enumerate(messages) if m.startswith("the exchange is back"))
        assert down < back


def test_a_delivery_held_past_the_processing_timeout_is_placed_once(tmp_path: Path) -> None:
    components = quick_redelivery(fast_retry_components(tmp_path / "components"))
    with exchange_outage(tmp_path, components) as outage:
        outage.begin()
        ids = outage.post(3)
        outage.wait_until_held(len(ids))
        # Redis hands the messages out again while their first deliveries are held.
        wait_for(
            lambda: outage.placer_metric("orders_repeated_deliveries_total") >= len(ids),
            what="the held messages delivered again",
            timeout_seconds=PLACED_TIMEOUT_SECONDS,
        )
        outage.end()
        outage.wait_until_settled(ids, "placed")
        assert ExchangeLedger(outage.stack.ledger_path).submissions() == dict.fromkeys(ids, 1)
        assert outage.placer_metric("orders_dead_lettered_total") == 0
        # Every delivery was answered: the repeats found their orders placed.
        wait_for(
            lambda: outage.placer_metric("orders_in_flight") == 0,
            what="every delivery answered",
            timeout_seconds=PLACED_TIMEOUT_SECONDS,
        )
        repeats = outage.placer_metric("orders_placement_attempts_total", outcome="already_done")
        assert repeats >= len(ids)


def test_an_order_not_placed_within_the_maximum_age_is_dead_lettered_with_that_reason(
    tmp_path: Path,
) -> None:
    components = fast_retry_components(tmp_path / "components")
    with exchange_outage(tmp_path, components, PLACER_MAX_ORDER_AGE_SECONDS="3") as outage:
        outage.begin()
        [order_id] = outage.post(1)
        wait_for(
            lambda: outage.placer_metric("orders_dead_lettered_total") == 1,
            what="the order dead-lettered",
            timeout_seconds=PLACED_TIMEOUT_SECONDS,
        )
        order = outage.order(order_id)
        assert order["failure_reason"] == "not placed within the maximum order age (3 s)"
        history = outage.stack.client.get(f"/orders/{order_id}/events").json()
        assert history[-1]["kind"] == "dead_lettered"
        assert history[-1]["detail"] == order["failure_reason"]
        assert order["status"] == "failed"
        assert outage.placer_metric("orders_placement_attempts_total", outcome="expired") == 1
        assert ExchangeLedger(outage.stack.ledger_path).submissions() == {}
