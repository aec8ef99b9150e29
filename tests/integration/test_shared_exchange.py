"""The shared exchange stand-in (`python -m exchange`) as a cluster runs it: its own process,
one ledger for every placer, reached over HTTP with a deadline (EXCHANGE_URL). Each order is
placed on it exactly once, with two placers too, and an answer lost after it accepted an order
makes the retry a harmless repeat of the client order id."""

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from core.config import PROJECT_ROOT
from devstack.config import StateStoreKind
from devstack.processes import ProcessGroup, free_port, http_ok, wait_until
from devstack.stack import start_replicas
from tests.factories import limit_order_body
from tests.integration.stack_fixtures import RunningStack, running_stack
from tests.polling import wait_for

STARTUP_TIMEOUT_SECONDS = 30
PLACED_TIMEOUT_SECONDS = 60


@dataclass
class SharedExchange:
    url: str
    control_path: Path
    client: httpx.Client

    def placements(self) -> dict[str, Any]:
        answer = self.client.get("/placements")
        assert answer.status_code == 200
        placements: dict[str, Any] = answer.json()
        return placements

    def submissions_of(self, order_id: str) -> int:
        answer = self.client.get(f"/orders/{order_id}")
        return 0 if answer.status_code == 404 else int(answer.json()["submissions"])


@contextmanager
def running_exchange(tmp: Path, *, failure_rate: str) -> Iterator[SharedExchange]:
    """Starts (and at the end stops) the stand-in service on a free loopback port."""
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    control_path = tmp / "exchange-control.json"
    env = {
        **os.environ,
        "EXCHANGE_HOST": "127.0.0.1",
        "EXCHANGE_PORT": str(port),
        "EXCHANGE_LEDGER_PATH": str(tmp / "shared-ledger.sqlite3"),
        "EXCHANGE_CONTROL_PATH": str(control_path),
        "EXCHANGE_LATENCY_SECONDS": "0.05",
        "EXCHANGE_FAILURE_RATE": failure_rate,
    }
    url = f"http://127.0.0.1:{port}"
    with ProcessGroup(tmp) as group:
        process = group.start("exchange", [sys.executable, "-m", "exchange"], env=env,
                              cwd=PROJECT_ROOT)  # fmt: skip
        wait_until(process, http_ok(f"{url}/health/ready"), what="starting",
                   timeout_seconds=STARTUP_TIMEOUT_SECONDS)  # fmt: skip
        with httpx.Client(base_url=url, timeout=10) as client:
            yield SharedExchange(url, control_path, client)


def placing_on(exchange: SharedExchange, **settings: str) -> dict[str, str]:
    """The apps' settings that send the placers' calls to the shared stand-in."""
    return {"EXCHANGE_URL": exchange.url, **settings}


def place(stack: RunningStack, orders: int) -> list[str]:
    ids = []
    for quantity in range(1, orders + 1):
        answer = stack.client.post("/orders", json=limit_order_body(quantity=quantity))
        assert answer.status_code == 201
        ids.append(answer.json()["id"])
    return ids


def wait_until_placed(stack: RunningStack, ids: list[str]) -> None:
    def all_placed() -> bool:
        statuses = {stack.client.get(f"/orders/{order_id}").json()["status"] for order_id in ids}
        return statuses == {"placed"}

    wait_for(all_placed, what="every order placed", timeout_seconds=PLACED_TIMEOUT_SECONDS)


def test_two_placers_place_each_order_exactly_once_on_the_shared_stand_in(
    tmp_path: Path,
) -> None:
    with running_exchange(tmp_path / "exchange", failure_rate="0.1") as exchange:
        app_env = placing_on(exchange)
        with running_stack(tmp_path / "stack", StateStoreKind.REDIS, app_env=app_env) as stack:
            start_replicas(stack.group, stack.options, apis=0, placers=1)
            ids = place(stack, 40)
            wait_until_placed(stack, ids)
            placements = exchange.placements()
            assert placements["accepted"] == dict.fromkeys(ids, 1)
            assert (placements["orders"], placements["duplicates"]) == (40, {})
            # Neither placer used a ledger of its own.
            assert not stack.ledger_path.exists()


def test_an_answer_lost_after_the_stand_in_accepted_the_order_is_harmless(
    tmp_path: Path,
) -> None:
    with running_exchange(tmp_path / "exchange", failure_rate="0") as exchange:
        # The stand-in accepts, then answers after the placer has given up on the call.
        exchange.control_path.write_text(json.dumps({"answer_delay_seconds": 4}))
        app_env = placing_on(exchange, EXCHANGE_TIMEOUT_SECONDS="1")
        with running_stack(tmp_path / "stack", StateStoreKind.REDIS, app_env=app_env) as stack:
            [order_id] = place(stack, 1)
            wait_for(
                lambda: exchange.submissions_of(order_id) >= 1,
                what="the order accepted by the stand-in",
                timeout_seconds=PLACED_TIMEOUT_SECONDS,
            )
            exchange.control_path.unlink()  # the redelivery's answer comes back in time
            wait_until_placed(stack, [order_id])
            events = stack.client.get(f"/orders/{order_id}/events").json()
            assert (events[0]["kind"], events[-1]["kind"]) == ("accepted", "placed")
            # The lost answer was a failed attempt; the retry repeated the client order id.
            failed = [event["detail"] for event in events if event["kind"] == "attempt_failed"]
            assert failed and all("TimeoutError" in detail for detail in failed)
            assert exchange.submissions_of(order_id) >= 2
            placements = exchange.placements()
            assert (placements["orders"], list(placements["accepted"])) == (1, [order_id])
