"""The fault matrix: for each fault, 1,000 orders stream in while it strikes halfway; then the
stores and the exchange ledger must show no order lost, none placed after a 500, and every 500
fast and exact. The table goes to tests/faults/results/ (latest.md, and latest.json), which
tests/faults/README.md links to."""

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

import httpx
import pytest

from core.config import PROJECT_ROOT
from devstack.config import StateStoreKind
from tests.faults.harness import CaseReport, FaultStack, drive, fault_stack, kill, report

pytestmark = pytest.mark.faults

ORDERS = 1000
RATE_PER_SECOND = 50
DRAIN_DEADLINE_SECONDS = 120
RESULTS = PROJECT_ROOT / "tests" / "faults" / "results"


def kill_api(stack: FaultStack) -> None:
    kill(stack.apis[0].app)  # its share goes to the other API, as behind a load balancer


def kill_api_sidecar(stack: FaultStack) -> None:
    kill(stack.apis[0].sidecar)
    time.sleep(2)
    stack.restart(stack.apis[0].sidecar)


def kill_placer(stack: FaultStack) -> None:
    kill(stack.placers[0].app)
    time.sleep(2)
    stack.restart(stack.placers[0].app)


def kill_placer_sidecar(stack: FaultStack) -> None:
    kill(stack.placers[0].sidecar)
    time.sleep(2)
    stack.restart(stack.placers[0].sidecar)


def restart_redis(stack: FaultStack) -> None:
    kill(stack.stores.redis.process)
    time.sleep(3)
    stack.stores.restart_redis()


def restart_postgres(stack: FaultStack) -> None:
    assert stack.stores.postgres is not None
    kill(stack.stores.postgres.process)
    time.sleep(3)
    stack.stores.restart_postgres()


def exchange_down_for(seconds: float) -> Callable[[FaultStack], None]:
    def fault(stack: FaultStack) -> None:
        stack.set_exchange(failure_rate=1.0)
        time.sleep(seconds)
        stack.heal_exchange()

    return fault


def exchange_hangs(stack: FaultStack) -> None:
    # Each call takes 8 s, 160 times its usual time; the deliveries wait for their calls.
    stack.set_exchange(latency_seconds=8.0)
    time.sleep(15)
    stack.heal_exchange()


def poison_message(stack: FaultStack) -> None:
    placer = stack.placers[0]
    token = {"dapr-api-token": stack.options.dapr_api_token or ""}
    for body in ({"not": "an order"}, "garbage", [1, 2, 3]):
        response = httpx.post(
            f"{placer.dapr_url}/v1.0/publish/orderpubsub/orders",
            json=body, headers=token, timeout=10,
        )  # fmt: skip
        response.raise_for_status()


CASES: dict[str, tuple[Callable[[FaultStack], None], StateStoreKind]] = {
    "kill -9 an API": (kill_api, StateStoreKind.REDIS),
    "kill -9 an API's daprd": (kill_api_sidecar, StateStoreKind.REDIS),
    "kill -9 a placer": (kill_placer, StateStoreKind.REDIS),
    "kill -9 a placer's daprd": (kill_placer_sidecar, StateStoreKind.REDIS),
    "restart Redis (store and broker)": (restart_redis, StateStoreKind.REDIS),
    "restart Redis (broker; PostgreSQL store)": (restart_redis, StateStoreKind.POSTGRES),
    "restart PostgreSQL (store)": (restart_postgres, StateStoreKind.POSTGRES),
    "exchange fails 100% for 60 s": (exchange_down_for(60), StateStoreKind.REDIS),
    "exchange fails 100% for 10 minutes": (exchange_down_for(600), StateStoreKind.REDIS),
    "exchange hangs (8 s a call) for 15 s": (exchange_hangs, StateStoreKind.REDIS),
    "poison messages on the topic": (poison_message, StateStoreKind.REDIS),
}


@pytest.fixture(scope="module")
def reports() -> Iterator[list[CaseReport]]:
    collected: list[CaseReport] = []
    yield collected
    write_results(collected)


# The placer holds its deliveries while the exchange is down: none may be dead-lettered.
EXCHANGE_OUTAGES = {"exchange fails 100% for 60 s", "exchange fails 100% for 10 minutes"}
LONG_CASES = {"exchange fails 100% for 10 minutes"}


def case_param(case: str) -> object:
    if case not in LONG_CASES:
        return case
    return pytest.param(case, marks=pytest.mark.timeout(1500))  # the outage, then the drain


@pytest.mark.parametrize("case", [case_param(case) for case in CASES])
def test_fault(case: str, tmp_path: Path, reports: list[CaseReport]) -> None:
    fault, kind = CASES[case]
    with fault_stack(tmp_path, kind) as stack:
        answers = asyncio.run(drive(stack, ORDERS, RATE_PER_SECOND, lambda: fault(stack)))
        # Every answer, for a closer look at a failed case (the logs are beside it).
        rows = {quantity: asdict(answer) for quantity, answer in answers.items()}
        (tmp_path / "answers.json").write_text(json.dumps(rows))
        result = report(case, stack, answers, DRAIN_DEADLINE_SECONDS)
    result.dead_letters_allowed = case not in EXCHANGE_OUTAGES
    reports.append(result)
    write_results(reports)  # after every case, so a stopped run still leaves its table
    assert result.answered_201 > 0
    assert result.passed(), result.as_dict()


def write_results(reports: list[CaseReport]) -> None:
    if not reports:
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows = [r.as_dict() for r in reports]
    (RESULTS / "latest.json").write_text(json.dumps(rows, indent=2) + "\n")
    header = (
        "| fault | store | 201 | placed | dead-lettered | lost | resubmitted | 500 "
        "| slowest 500 ms | 500 yet committed | 500 yet placed | no answer | drain s | pass |"
    )
    lines = [header, "|" + " --- |" * 14]
    for r in reports:
        lines.append(
            f"| {r.case} | {r.store} | {r.answered_201} | {r.placed} | {r.dead_lettered} "
            f"| {r.lost} | {r.resubmitted} | {r.answered_500} | {r.slowest_500_ms} "
            f"| {r.committed_after_500} | {r.placed_after_500} | {r.no_answer} "
            f"| {r.drain_seconds} | {'yes' if r.passed() else 'NO'} |"
        )
    (RESULTS / "latest.md").write_text("\n".join(lines) + "\n")
