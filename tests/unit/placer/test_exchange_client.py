"""The placer's client of the shared exchange stand-in, against a loopback HTTP server: what a
call sends, and which answers (or none) count as a failed call the sidecar retries."""

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
import pytest
from aiohttp import web

from core.domain import Order
from devstack.processes import free_port
from placer.exchange_client import ExchangeClient
from placer.stock_exchange import OrderPlacementError, OrderRefusedError
from tests.factories import accepted_order

pytestmark = pytest.mark.anyio

DEADLINE_SECONDS = 0.2


@dataclass
class StandIn:
    """Records each call, and answers with `status`, or not at all while `hang` is set."""

    status: int = 201
    hang: bool = False
    received: list[dict[str, Any]] = field(default_factory=list)
    released: asyncio.Event = field(default_factory=asyncio.Event)  # ends the hung answers

    async def handle(self, request: web.Request) -> web.StreamResponse:
        assert (request.method, request.path) == ("POST", "/orders")
        self.received.append(json.loads(await request.read()))
        if self.hang:
            await self.released.wait()
        return web.json_response({"submissions": 1}, status=self.status)


@pytest.fixture
async def stand_in() -> AsyncIterator[tuple[StandIn, ExchangeClient]]:
    server = StandIn()
    app = web.Application()
    app.router.add_post("/orders", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    client = ExchangeClient(
        f"http://{host}:{port}/", timeout_seconds=DEADLINE_SECONDS, max_connections=2
    )
    yield server, client
    server.released.set()
    await client.aclose()
    await runner.cleanup()


@pytest.mark.parametrize("status", [201, 200])
async def test_an_acceptance_or_a_repeat_of_one_is_a_placed_order(
    stand_in: tuple[StandIn, ExchangeClient], status: int
) -> None:
    server, client = stand_in
    server.status = status
    order = accepted_order()
    await client.submit(order)
    [sent] = server.received
    assert Order.model_validate(sent) == order  # the id is the client order id


@pytest.mark.parametrize("status", [503, 422, 500, 429])
async def test_any_other_answer_is_a_failed_call(
    stand_in: tuple[StandIn, ExchangeClient], status: int
) -> None:
    server, client = stand_in
    server.status = status
    with pytest.raises(OrderPlacementError, match=str(status)):
        await client.submit(accepted_order())


@pytest.mark.parametrize(
    ("status", "refused"),
    [(422, True), (400, True), (503, False), (500, False), (408, False), (429, False)],
)
async def test_a_client_error_is_a_refused_order_a_server_error_a_failed_exchange(
    stand_in: tuple[StandIn, ExchangeClient], status: int, refused: bool
) -> None:
    # A refusal is the order's own failure: it does not count towards a down exchange.
    server, client = stand_in
    server.status = status
    with pytest.raises(OrderPlacementError) as raised:
        await client.submit(accepted_order())
    assert isinstance(raised.value, OrderRefusedError) is refused


async def test_no_answer_within_the_deadline_is_a_failed_call(
    stand_in: tuple[StandIn, ExchangeClient],
) -> None:
    server, client = stand_in
    server.hang = True
    with pytest.raises(OrderPlacementError, match="did not answer"):
        await client.submit(accepted_order())
    assert len(server.received) == 1  # it reached the stand-in: its answer was what got lost


async def test_an_unreachable_stand_in_is_a_failed_call() -> None:
    client = ExchangeClient(
        f"http://127.0.0.1:{free_port()}", timeout_seconds=DEADLINE_SECONDS, max_connections=1
    )
    try:
        with pytest.raises(OrderPlacementError, match="did not answer"):
            await client.submit(accepted_order())
    finally:
        await client.aclose()


async def test_the_placer_calls_it_from_a_worker_thread_as_the_in_process_one(
    stand_in: tuple[StandIn, ExchangeClient],
) -> None:
    server, client = stand_in
    orders = [accepted_order() for _ in range(3)]
    for order in orders:
        await anyio.to_thread.run_sync(client.place_order, order)
    server.status = 503
    with pytest.raises(OrderPlacementError):
        await anyio.to_thread.run_sync(client.place_order, accepted_order())
    assert [sent["id"] for sent in server.received[:3]] == [order.id for order in orders]
