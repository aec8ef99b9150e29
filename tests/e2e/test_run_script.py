"""The whole stack as `./run` starts it: 200 orders, the exchange failing 10% of the time;
each accepted order reaches the exchange exactly once."""

import asyncio
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.config import PROJECT_ROOT
from devstack.processes import free_port, port_open
from placer.stock_exchange import ExchangeLedger
from tests.factories import limit_order_body, market_order_body
from tests.polling import wait_for
from tests.telemetry import scrape, value

ORDERS = 200
CONCURRENCY = 8
PLACEMENT_DEADLINE_SECONDS = 180
STARTUP_DEADLINE_SECONDS = 240


class RunScript:
    def __init__(self, process: subprocess.Popen[bytes], env: dict[str, str], ledger: Path) -> None:
        self.process = process
        self.env = env
        self.api_url = f"http://127.0.0.1:{env['API_PORT']}"
        self.ledger = ledger

    def ports(self) -> list[int]:
        names = (
            "API_PORT", "PLACER_PORT", "PLACER_GRPC_PORT", "API_DAPR_HTTP_PORT",
            "PLACER_DAPR_HTTP_PORT", "API_METRICS_PORT", "PLACER_METRICS_PORT",
        )  # fmt: skip
        return [int(self.env[name]) for name in names]


@pytest.fixture(scope="module")
def run_script(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunScript]:
    tmp = tmp_path_factory.mktemp("run")
    ledger = tmp / "exchange-ledger.sqlite3"
    env = {
        **os.environ,
        "ENVIRONMENT": "production",
        "API_PORT": str(free_port()),
        "API_WORKERS": "2",
        "PLACER_PORT": str(free_port()),
        "PLACER_GRPC_PORT": str(free_port()),
        "API_DAPR_HTTP_PORT": str(free_port()),
        "PLACER_DAPR_HTTP_PORT": str(free_port()),
        "API_METRICS_PORT": str(free_port()),
        "PLACER_METRICS_PORT": str(free_port()),
        "DATA_DIR": str(tmp / "data"),
        "EXCHANGE_LEDGER_PATH": str(ledger),
        "EXCHANGE_FAILURE_RATE": "0.1",
        "EXCHANGE_LATENCY_SECONDS": "0.5",
    }
    log = (tmp / "run.log").open("wb")
    process = subprocess.Popen(
        [str(PROJECT_ROOT / "run")], env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    run_script = RunScript(process, env, ledger)
    try:
        wait_for(
            lambda: _ready(run_script.api_url) or process.poll() is not None,
            what="./run ready",
            timeout_seconds=STARTUP_DEADLINE_SECONDS,
        )
        assert process.poll() is None, (tmp / "run.log").read_text()
        yield run_script
    finally:
        _interrupt(process)
        log.close()


def _interrupt(process: subprocess.Popen[bytes]) -> int:
    """Stops ./run as Ctrl-C does; kills it if it does not stop in time."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
    try:
        return process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise


def _ready(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/health/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


async def _post_orders(api_url: str) -> list[httpx.Response]:
    slots = asyncio.Semaphore(CONCURRENCY)
    bodies = [
        limit_order_body(quantity=n) if n % 2 else market_order_body(quantity=n)
        for n in range(1, ORDERS + 1)
    ]

    async def post(client: httpx.AsyncClient, body: dict[str, object]) -> httpx.Response:
        async with slots:
            return await client.post("/orders", json=body)

    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        return await asyncio.gather(*(post(client, body) for body in bodies))


def test_docs_are_served(run_script: RunScript) -> None:
    response = httpx.get(f"{run_script.api_url}/docs", timeout=10)
    assert response.status_code == 200
    assert "swagger" in response.text.lower()


def test_every_accepted_order_is_placed_exactly_once(run_script: RunScript) -> None:
    responses = asyncio.run(_post_orders(run_script.api_url))
    assert [response.status_code for response in responses] == [201] * ORDERS
    ids = {response.json()["id"] for response in responses}
    assert len(ids) == ORDERS

    def all_placed() -> bool:
        return ids <= set(ExchangeLedger(run_script.ledger).submissions())

    wait_for(all_placed, what="all orders placed", timeout_seconds=PLACEMENT_DEADLINE_SECONDS)
    submissions = ExchangeLedger(run_script.ledger).submissions()
    assert set(submissions) == ids
    assert set(submissions.values()) == {1}

    def all_marked_placed() -> bool:
        with httpx.Client(base_url=run_script.api_url, timeout=10) as client:
            return all(client.get(f"/orders/{i}").json()["status"] == "placed" for i in ids)

    wait_for(all_marked_placed, what="all orders marked placed", timeout_seconds=60)


def test_metrics_count_the_orders_across_the_api_workers(run_script: RunScript) -> None:
    # After the test above: its orders, accepted by two API workers, one endpoint for both.
    api = scrape(f"http://127.0.0.1:{run_script.env['API_METRICS_PORT']}/metrics")
    placer = scrape(f"http://127.0.0.1:{run_script.env['PLACER_METRICS_PORT']}/metrics")
    assert value(api, "orders_accepted_total") == ORDERS
    post = {"method": "POST", "route": "/orders", "status": "201"}
    assert value(api, "orders_api_requests_total", **post) == ORDERS
    assert value(placer, "orders_placed_total") == ORDERS
    # One exchange call in ten fails: some of the 200 orders needed a retry.
    assert value(placer, "orders_placement_attempts_total", outcome="exchange_failed") > 0
    assert value(placer, "orders_accept_to_placed_seconds_count") == ORDERS


def test_ctrl_c_stops_every_process(run_script: RunScript) -> None:
    # Runs last in this module: stop ./run and check that nothing it started is left.
    assert _interrupt(run_script.process) == 0
    assert [port for port in run_script.ports() if port_open(port)()] == []
    leftovers = subprocess.run(
        ["pgrep", "-f", run_script.env["DATA_DIR"]], capture_output=True, text=True, check=False
    )
    assert leftovers.stdout.strip() == ""  # the private Redis runs with its data there
