"""The whole stack as `./run` starts it: 200 orders, the exchange failing 10% of the time;
each accepted order reaches the exchange exactly once. Stopped with Ctrl-C or killed, `./run`
leaves no process behind."""

import asyncio
import os
import signal
import socket
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
from tests.processes import Process, descendants
from tests.telemetry import scrape, value

ORDERS = 200
CONCURRENCY = 8
PLACEMENT_DEADLINE_SECONDS = 180
STARTUP_DEADLINE_SECONDS = 240
# The guardian's grace before SIGKILL (devstack/processes.py), and time to spare.
ORPHANS_DEADLINE_SECONDS = 30
PORT_NAMES = (
    "API_PORT", "PLACER_PORT", "PLACER_GRPC_PORT", "API_DAPR_HTTP_PORT",
    "PLACER_DAPR_HTTP_PORT", "API_METRICS_PORT", "PLACER_METRICS_PORT",
)  # fmt: skip


class RunScript:
    def __init__(self, process: subprocess.Popen[bytes], env: dict[str, str], ledger: Path) -> None:
        self.process = process
        self.env = env
        self.api_url = f"http://127.0.0.1:{env['API_PORT']}"
        self.ledger = ledger

    def ports(self) -> list[int]:
        return [int(self.env[name]) for name in PORT_NAMES]


def _run_env(tmp: Path, environment: str) -> dict[str, str]:
    """./run's settings: every port free, the data in `tmp`."""
    return {
        **os.environ,
        **{name: str(free_port()) for name in PORT_NAMES},
        "ENVIRONMENT": environment,
        "API_WORKERS": "2",
        "DATA_DIR": str(tmp / "data"),
        "EXCHANGE_LEDGER_PATH": str(tmp / "exchange-ledger.sqlite3"),
        "EXCHANGE_FAILURE_RATE": "0.1",
        "EXCHANGE_LATENCY_SECONDS": "0.5",
    }


def _start_run(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(
            [str(PROJECT_ROOT / "run")], env=env, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def _wait_until_ready(process: subprocess.Popen[bytes], api_url: str, log: Path) -> None:
    wait_for(
        lambda: _ready(api_url) or process.poll() is not None,
        what="./run ready",
        timeout_seconds=STARTUP_DEADLINE_SECONDS,
    )
    assert process.poll() is None, log.read_text()


@pytest.fixture(scope="module")
def run_script(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunScript]:
    tmp = tmp_path_factory.mktemp("run")
    env = _run_env(tmp, "production")
    process = _start_run(env, tmp / "run.log")
    run_script = RunScript(process, env, Path(env["EXCHANGE_LEDGER_PATH"]))
    try:
        _wait_until_ready(process, run_script.api_url, tmp / "run.log")
        yield run_script
    finally:
        _interrupt(process)


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
    # One exchange call in ten fails: some calls for the 200 orders failed and were repeated.
    assert value(placer, "orders_exchange_call_duration_seconds_count", result="failed") > 0
    assert value(placer, "orders_accept_to_placed_seconds_count") == ORDERS


def test_ctrl_c_stops_every_process(run_script: RunScript) -> None:
    # After the tests above, which share this ./run: stop it, and nothing it started is left.
    assert _interrupt(run_script.process) == 0
    assert [port for port in run_script.ports() if port_open(port)()] == []
    leftovers = subprocess.run(
        ["pgrep", "-f", run_script.env["DATA_DIR"]], capture_output=True, text=True, check=False
    )
    assert leftovers.stdout.strip() == ""  # the private Redis runs with its data there


def _can_listen(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        # As uvicorn, Redis and daprd do: connections left in TIME_WAIT do not hold the port.
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            server.bind(("127.0.0.1", port))
            server.listen()
        except OSError:
            return False
    return True


def test_sigkill_leaves_no_process_behind(tmp_path: Path) -> None:
    # A ./run of its own, in development: the API is uvicorn's reloader and its server process.
    env = _run_env(tmp_path, "development")
    process = _start_run(env, tmp_path / "run.log")
    started: set[Process] = set()
    try:
        _wait_until_ready(process, f"http://127.0.0.1:{env['API_PORT']}", tmp_path / "run.log")
        started = descendants(process.pid)
        assert {"redis-server", "daprd", "python"} <= {p.name for p in started}, started
        process.kill()
        process.wait(timeout=10)
        wait_for(
            lambda: not [p for p in started if p.alive()],
            what="every process ./run started gone",
            timeout_seconds=ORPHANS_DEADLINE_SECONDS,
        )
        assert [name for name in PORT_NAMES if not _can_listen(int(env[name]))] == []
    finally:
        started |= descendants(process.pid)  # when it failed to start
        process.kill()
        process.wait(timeout=10)
        for leftover in started:
            if leftover.alive():
                os.kill(leftover.pid, signal.SIGKILL)
