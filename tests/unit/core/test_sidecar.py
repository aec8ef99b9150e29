"""The sidecar client against a loopback HTTP server that answers as daprd's state API does:
what each call sends, and how each kind of answer (or none) comes back."""

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from opentelemetry import context, trace

from core.sidecar import DaprSidecar, EtagMismatchError, SidecarError, StateApi

pytestmark = pytest.mark.anyio

TOKEN = "sidecar-token"
DEADLINE_SECONDS = 0.2
# Far above DEADLINE_SECONDS: a client that does not give up by itself fails the test.
TEST_BOUND_SECONDS = 10

Answer = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON; None without a body


async def no_content(request: web.Request) -> web.StreamResponse:
    return web.Response(status=204)


@dataclass
class Loopback:
    """Records every request, and answers each with `answer`."""

    received: list[Received] = field(default_factory=list)
    answer: Answer = no_content
    released: asyncio.Event = field(default_factory=asyncio.Event)  # ends the hung answers

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        self.received.append(Received(request.method, request.path, dict(request.headers), body))
        return await self.answer(request)

    def answer_with(
        self, status: int, body: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        async def answer(request: web.Request) -> web.StreamResponse:
            if body is None:
                return web.Response(status=status, headers=headers)
            return web.json_response(body, status=status, headers=headers)

        self.answer = answer

    def hang(self) -> None:
        async def answer(request: web.Request) -> web.StreamResponse:
            await self.released.wait()
            return web.Response(status=204)

        self.answer = answer


@pytest.fixture
async def loopback() -> AsyncIterator[tuple[Loopback, DaprSidecar]]:
    server = Loopback()
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    client = DaprSidecar(f"http://{host}:{port}", api_token=TOKEN, timeout_seconds=DEADLINE_SECONDS)
    yield server, client
    server.released.set()
    await client.aclose()
    await runner.cleanup()


def test_the_client_has_the_api_the_repository_uses() -> None:
    # mypy checks the assignment: DaprSidecar satisfies the Protocol its fake satisfies.
    sidecar: StateApi = DaprSidecar("http://127.0.0.1:9", api_token=None, timeout_seconds=1)
    assert isinstance(sidecar, DaprSidecar)


async def test_every_call_carries_the_api_token(loopback: tuple[Loopback, DaprSidecar]) -> None:
    server, client = loopback
    await client.delete_state("store", "k")
    [request] = server.received
    assert (request.method, request.path) == ("DELETE", "/v1.0/state/store/k")
    assert request.headers["dapr-api-token"] == TOKEN


async def test_a_call_made_in_a_trace_passes_it_on(loopback: tuple[Loopback, DaprSidecar]) -> None:
    server, client = loopback
    span = trace.NonRecordingSpan(
        trace.SpanContext(
            trace_id=0x0AF7651916CD43DD8448EB211C80319C,
            span_id=0xB7AD6B7169203331,
            is_remote=False,
            trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
        )
    )
    token = context.attach(trace.set_span_in_context(span))
    try:
        await client.publish("pubsub", "orders", {"id": "o-1"})
    finally:
        context.detach(token)
    [request] = server.received
    assert request.path == "/v1.0/publish/pubsub/orders"
    assert request.body == {"id": "o-1"}
    assert request.headers["traceparent"] == (
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    )


async def test_a_save_sends_first_write_etag_and_ttl(
    loopback: tuple[Loopback, DaprSidecar],
) -> None:
    server, client = loopback
    await client.save_state("store", "k", {"a": 1}, etag="7", first_write=True, ttl_seconds=60)
    await client.save_state("store", "plain", "v")
    assert [request.body for request in server.received] == [
        [
            {
                "key": "k",
                "value": {"a": 1},
                "etag": "7",
                "options": {"concurrency": "first-write"},
                "metadata": {"ttlInSeconds": "60"},
            }
        ],
        [{"key": "plain", "value": "v"}],
    ]
    assert {request.path for request in server.received} == {"/v1.0/state/store"}


async def test_a_transaction_of_expiring_keys_is_upserts_with_their_ttl(
    loopback: tuple[Loopback, DaprSidecar],
) -> None:
    server, client = loopback
    await client.save_in_transaction("markers", {"m1": "0", "m2": "0"}, ttl_seconds=3600)
    [request] = server.received
    assert request.path == "/v1.0/state/markers/transaction"
    assert request.body == {
        "operations": [
            {
                "operation": "upsert",
                "request": {"key": key, "value": "0", "metadata": {"ttlInSeconds": "3600"}},
            }
            for key in ("m1", "m2")
        ]
    }


async def test_a_conflict_is_an_etag_mismatch(loopback: tuple[Loopback, DaprSidecar]) -> None:
    server, client = loopback
    server.answer_with(409, {"errorCode": "ERR_STATE_SAVE", "message": "possible etag mismatch"})
    with pytest.raises(EtagMismatchError, match="etag mismatch"):
        await client.save_state("store", "k", "v", first_write=True)


async def test_a_failure_of_the_sidecar_is_a_sidecar_error(
    loopback: tuple[Loopback, DaprSidecar],
) -> None:
    server, client = loopback
    server.answer_with(500, {"errorCode": "ERR_STATE_GET", "message": "connection refused"})
    with pytest.raises(SidecarError, match="HTTP 500") as raised:
        await client.get_state("store", "k")
    assert not isinstance(raised.value, EtagMismatchError)


async def test_a_stored_key_comes_with_its_etag_and_a_missing_one_as_none(
    loopback: tuple[Loopback, DaprSidecar],
) -> None:
    server, client = loopback
    server.answer_with(200, {"a": 1}, headers={"ETag": "12"})
    assert await client.get_state("store", "k") == (b'{"a": 1}', "12")
    server.answer_with(204)
    assert await client.get_state("store", "missing") == (None, None)


async def test_a_bulk_read_leaves_missing_keys_out(loopback: tuple[Loopback, DaprSidecar]) -> None:
    server, client = loopback
    items = [{"key": "a", "data": {"n": 1}, "etag": "1"}, {"key": "b"}]
    server.answer_with(200, items)
    assert await client.get_bulk_state("store", ["a", "b"]) == {"a": {"n": 1}}
    assert server.received[0].body == {"keys": ["a", "b"], "parallelism": 2}


async def test_a_key_that_failed_in_a_bulk_read_fails_the_read(
    loopback: tuple[Loopback, DaprSidecar],
) -> None:
    # The sidecar answers 200: the failure is in the key's item, and is no "missing".
    server, client = loopback
    server.answer_with(200, [{"key": "a", "data": 1}, {"key": "b", "error": "read timed out"}])
    with pytest.raises(SidecarError, match="read timed out"):
        await client.get_bulk_state("store", ["a", "b"])


async def test_a_sidecar_that_does_not_answer_is_given_up_on_at_the_deadline(
    loopback: tuple[Loopback, DaprSidecar],
) -> None:
    server, client = loopback
    server.hang()
    async with asyncio.timeout(TEST_BOUND_SECONDS):
        with pytest.raises(SidecarError, match=re.escape(f"no answer in {DEADLINE_SECONDS} s")):
            await client.execute_transaction("store", [])
        with pytest.raises(SidecarError, match=re.escape("no answer in 0.05 s")):
            await client.get_state("store", "k", timeout_seconds=0.05)


async def test_readiness_is_the_sidecars_health(loopback: tuple[Loopback, DaprSidecar]) -> None:
    server, client = loopback
    assert await client.is_ready(DEADLINE_SECONDS)
    assert server.received[0].path == "/v1.0/healthz"
    server.answer_with(500)
    assert not await client.is_ready(DEADLINE_SECONDS)
    server.hang()
    async with asyncio.timeout(TEST_BOUND_SECONDS):
        assert not await client.is_ready(0.05)


async def test_a_sidecar_that_is_not_there_is_a_sidecar_error() -> None:
    client = DaprSidecar("http://127.0.0.1:9", api_token=None, timeout_seconds=DEADLINE_SECONDS)
    try:
        with pytest.raises(SidecarError):
            await client.get_state("store", "k")
    finally:
        await client.aclose()
