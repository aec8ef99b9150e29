"""The fault matrix's stack: two APIs and two placers (each with its own daprd, same app ids,
shared stores), a steady stream of orders, one fault in the middle, and a report from the
stores and the exchange ledger."""

import asyncio
import json
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from core.config import Environment
from devstack.config import StateStoreKind
from devstack.processes import ManagedProcess, ProcessGroup
from devstack.stack import (
    COMPONENTS_DIR,
    RunningApp,
    StackOptions,
    start_app_process,
    start_replicas,
    start_sidecar,
)
from placer.stock_exchange import ExchangeLedger
from tests.factories import limit_order_body, market_order_body
from tests.integration.stack_fixtures import (
    Stores,
    local_stack_options,
    set_pubsub_metadata,
    start_stores,
)

PLACEMENT_FAILED = {"message": "Internal server error while placing the order"}
ORDER_TIMEOUT_SECONDS = 3.0
CLIENT_TIMEOUT_SECONDS = 15.0


def fault_components(target: Path) -> Path:
    """components/ with redelivery and retries scaled down, so a case drains in seconds, not
    minutes: a crashed placer's deliveries come back after 20 s instead of 180 s, and the
    retries (about 16 s in all) still end well before that. The delivery's timeout stays as
    shipped (960 s): a delivery held while the exchange is down outlives the 20 s, and its
    message is delivered again meanwhile, as it is after 180 s in production."""
    shutil.copytree(COMPONENTS_DIR, target)
    set_pubsub_metadata(target, {"processingTimeout": "20s", "redeliverInterval": "5000"})
    resiliency_path = target / "common" / "resiliency.yaml"
    placement, *others = yaml.safe_load_all(resiliency_path.read_text())
    placement["spec"]["policies"]["retries"]["placementRetry"].update(
        {"maxInterval": "2s", "maxRetries": 10}
    )
    resiliency_path.write_text(yaml.safe_dump_all([placement, *others]))
    return target


@dataclass
class FaultStack:
    stores: Stores
    apis: list[RunningApp]
    placers: list[RunningApp]
    options: StackOptions
    group: ProcessGroup
    ledger_path: Path
    control_path: Path

    def set_exchange(self, **behaviour: float) -> None:
        self.control_path.write_text(json.dumps(behaviour))

    def heal_exchange(self) -> None:
        self.control_path.unlink(missing_ok=True)

    def restart(self, process: ManagedProcess) -> None:
        """Starts a killed process again, as Kubernetes restarts a crashed container."""
        for running in (*self.apis, *self.placers):
            if process is running.sidecar:
                running.sidecar = start_sidecar(
                    self.group, self.options, running.app_id, running.ports
                )
                return
            if process is running.app:
                running.app = start_app_process(
                    self.group, self.options, running.app_id, running.ports, running.command
                )
                return
        raise ValueError(f"{process.name} is not part of this stack")


@contextmanager
def fault_stack(tmp: Path, kind: StateStoreKind, replicas: int = 2) -> Iterator[FaultStack]:
    ledger_path, control_path = tmp / "ledger.sqlite3", tmp / "exchange-control.json"
    components = fault_components(tmp / "components")
    env = {
        "EXCHANGE_LEDGER_PATH": str(ledger_path),
        "EXCHANGE_CONTROL_PATH": str(control_path),
        "EXCHANGE_LATENCY_SECONDS": "0.05",
        "EXCHANGE_FAILURE_RATE": "0.1",
        "ORDER_TIMEOUT_SECONDS": str(ORDER_TIMEOUT_SECONDS),
        "LOG_LEVEL": "WARNING",
    }
    with ProcessGroup(tmp) as group:
        stores = start_stores(group, kind, tmp / "data")
        options = local_stack_options(stores, components, env)
        # As deployed: no reloader, one worker per replica.
        options.environment, options.api_workers = Environment.PRODUCTION, 1
        apis, placers = start_replicas(group, options, apis=replicas, placers=replicas)
        yield FaultStack(stores, apis, placers, options, group, ledger_path, control_path)


@dataclass
class Answer:
    status: int | None  # None: no answer (connection refused or reset, client timeout)
    seconds: float
    body: Any = None
    sent_at: float = 0.0  # time.monotonic() when it was sent
    api: int | None = None  # which API answered


@dataclass
class CaseReport:
    case: str
    store: str
    orders: int
    answered_201: int = 0
    answered_500: int = 0
    no_answer: int = 0
    other_status: int = 0
    placed: int = 0
    dead_lettered: int = 0
    lost: int = 0
    resubmitted: int = 0
    committed_after_500: int = 0  # answered 500, yet in the store
    placed_after_500: int = 0  # answered 500, yet placed: must never happen
    wrong_500_bodies: int = 0
    slowest_500_ms: float = 0.0
    slowest_201_ms: float = 0.0
    drain_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    # False for faults the placer must ride out without a dead letter (a down exchange).
    dead_letters_allowed: bool = True

    def passed(self) -> bool:
        bound_ms = (ORDER_TIMEOUT_SECONDS + 0.5) * 1000
        return (
            self.lost == 0
            and (self.dead_letters_allowed or self.dead_lettered == 0)
            and self.placed_after_500 == 0
            and self.wrong_500_bodies == 0
            and self.slowest_500_ms <= bound_ms
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed()}


def numbered_order(number: int) -> dict[str, Any]:
    """Order `number`, a limit or a market order in turn. Its quantity, number + 1, tells the
    requests apart, also those that got no 201 (and no id)."""
    quantity = number + 1
    body = limit_order_body if number % 2 else market_order_body
    return body(quantity=quantity)


async def send_order(
    stack: FaultStack, client: httpx.AsyncClient, number: int, answers: dict[int, Answer]
) -> None:
    """Sends order `number` round-robin over the APIs (skipping one that refuses connections,
    as a load balancer would), and records the answer under the order's quantity."""
    quantity, body = number + 1, numbered_order(number)
    started = time.monotonic()
    for attempt in range(len(stack.apis)):
        api = stack.apis[(number + attempt) % len(stack.apis)]
        try:
            response = await client.post(f"{api.url}/orders", json=body)
        except httpx.ConnectError:
            continue  # nothing was sent: try the other API
        except httpx.HTTPError:
            break
        seconds = time.monotonic() - started
        answers[quantity] = Answer(
            response.status_code, seconds, response.json(), started, stack.apis.index(api)
        )
        return
    answers[quantity] = Answer(None, time.monotonic() - started, sent_at=started)


def order_client(connections: int) -> httpx.AsyncClient:
    # Enough connections that no request waits on the client's side: latencies are the API's.
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(timeout=CLIENT_TIMEOUT_SECONDS, limits=limits)


async def drive(
    stack: FaultStack, orders: int, rate_per_second: float, fault: Callable[[], None]
) -> dict[int, Answer]:
    """Sends `orders` orders at a steady rate, without waiting for answers, and runs `fault`
    halfway through."""
    answers: dict[int, Answer] = {}
    fault_task: asyncio.Task[None] | None = None
    async with order_client(orders) as client:
        tasks = []
        for number in range(orders):
            if number == orders // 2:
                fault_task = asyncio.create_task(asyncio.to_thread(fault))
            tasks.append(asyncio.create_task(send_order(stack, client, number, answers)))
            await asyncio.sleep(1 / rate_per_second)
        await asyncio.gather(*tasks)
        if fault_task is not None:
            await fault_task
    return answers


def accepted_ids(answers: dict[int, Answer]) -> set[str]:
    return {str(answer.body["id"]) for answer in answers.values() if answer.status == 201}


def settle(
    stack: FaultStack, answers: dict[int, Answer], deadline_seconds: float
) -> tuple[dict[str, dict[str, Any]], dict[str, int], float]:
    """Waits until every accepted order is placed or dead-lettered (or the deadline passes)."""
    accepted = accepted_ids(answers)
    started = time.monotonic()
    while True:
        ledger = ExchangeLedger(stack.ledger_path).submissions()
        stored = stack.stores.stored_orders()
        still_open = [
            order_id
            for order_id in accepted
            if order_id not in ledger and stored.get(order_id, {}).get("status") != "failed"
        ]
        waited = time.monotonic() - started
        if not still_open or waited > deadline_seconds:
            return stored, ledger, waited
        time.sleep(1)


def report(
    case: str, stack: FaultStack, answers: dict[int, Answer], deadline_seconds: float
) -> CaseReport:
    stored, ledger, waited = settle(stack, answers, deadline_seconds)
    accepted = accepted_ids(answers)
    failures = {q: answer for q, answer in answers.items() if answer.status == 500}
    result = CaseReport(case=case, store=stack.stores.kind.value, orders=len(answers))
    result.answered_201 = len(accepted)
    result.answered_500 = len(failures)
    result.no_answer = sum(1 for answer in answers.values() if answer.status is None)
    result.other_status = len(answers) - result.answered_201 - result.answered_500
    result.other_status -= result.no_answer
    result.placed = len(accepted & set(ledger))
    result.dead_lettered = sum(
        1 for i in accepted - set(ledger) if stored.get(i, {}).get("status") == "failed"
    )
    result.lost = result.answered_201 - result.placed - result.dead_lettered
    # Orders the exchange received more than once: its client order id check placed each once.
    result.resubmitted = sum(1 for count in ledger.values() if count > 1)
    by_quantity = {document["quantity"]: order_id for order_id, document in stored.items()}
    committed_after_500 = {by_quantity[q] for q in failures if q in by_quantity}
    result.committed_after_500 = len(committed_after_500)
    result.placed_after_500 = len(committed_after_500 & set(ledger))
    result.wrong_500_bodies = sum(
        1 for answer in failures.values() if answer.body != PLACEMENT_FAILED
    )
    result.slowest_500_ms = round(max((a.seconds for a in failures.values()), default=0) * 1000, 1)
    result.slowest_201_ms = round(
        max((a.seconds for a in answers.values() if a.status == 201), default=0) * 1000, 1
    )
    result.drain_seconds = round(waited, 1)
    return result


def kill(process: ManagedProcess) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.popen.wait(timeout=10)
