"""The placer's gRPC callback server, as its sidecar calls it (a real server on loopback)."""

import asyncio
import json
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from dapr.proto.runtime.v1 import appcallback_pb2 as callback
from dapr.proto.runtime.v1 import appcallback_pb2_grpc as callback_grpc
from google.protobuf import empty_pb2

from core.config import settings
from devstack.processes import free_port
from placer.breaker import CallResult, ExchangeBreaker
from placer.callbacks import (
    OUTBOX_BATCH_SIZE,
    PlacerCallbacks,
    event_of,
    start_server,
    trace_carrier,
)
from placer.holding import DEADLINE_MARGIN_SECONDS, ExchangeGate
from placer.outbox_release import OutboxRelease
from placer.placement import Placer
from tests.factories import accepted_order
from tests.unit.fakes import MemorySidecar, repository, store_order

pytestmark = pytest.mark.anyio
TOKEN = "app-token"
WITH_TOKEN = (("dapr-api-token", TOKEN),)


def _unreachable_exchange(order: object) -> None:
    raise AssertionError("no exchange call expected")


@pytest.fixture
async def stub() -> AsyncIterator[callback_grpc.AppCallbackStub]:
    # Nothing here reaches the store: the events below are no orders.
    sidecar = MemorySidecar()
    orders = repository(sidecar)
    placer = Placer(orders, _unreachable_exchange, 1, answer_deadline_seconds=3)
    release = OutboxRelease(orders, sidecar, "markers", answer_deadline_seconds=3)
    port = free_port()
    server = await start_server(PlacerCallbacks(placer, release, TOKEN), "127.0.0.1", port)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield callback_grpc.AppCallbackStub(channel)
    await server.stop(0)
    assert sidecar.calls == []


async def test_orders_have_a_dead_letter_topic_with_its_own_subscription(
    stub: callback_grpc.AppCallbackStub,
) -> None:
    listed = await stub.ListTopicSubscriptions(empty_pb2.Empty(), metadata=WITH_TOKEN)
    by_topic = {subscription.topic: subscription for subscription in listed.subscriptions}
    orders = by_topic[settings.ORDERS_TOPIC]
    assert orders.pubsub_name == settings.PUBSUB
    assert orders.dead_letter_topic == settings.DEAD_LETTER_TOPIC
    assert by_topic[settings.DEAD_LETTER_TOPIC].pubsub_name == settings.PUBSUB


async def test_outbox_messages_come_in_batches(stub: callback_grpc.AppCallbackStub) -> None:
    listed = await stub.ListTopicSubscriptions(empty_pb2.Empty(), metadata=WITH_TOKEN)
    outbox = next(s for s in listed.subscriptions if s.topic == settings.OUTBOX_TOPIC)
    assert outbox.pubsub_name == settings.OUTBOX_PUBSUB
    assert outbox.bulk_subscribe.enabled
    assert outbox.bulk_subscribe.max_messages_count == OUTBOX_BATCH_SIZE


@pytest.mark.parametrize("data", [b'{"bogus": 1}', b"not json", b"[1, 2, 3]"])
async def test_poison_order_event_is_answered_with_drop(
    stub: callback_grpc.AppCallbackStub, data: bytes
) -> None:
    event = callback.TopicEventRequest(
        id="x", topic=settings.ORDERS_TOPIC, data=data, data_content_type="application/json"
    )
    answer = await stub.OnTopicEvent(event, metadata=WITH_TOKEN)
    assert answer.status == callback.TopicEventResponse.DROP


async def test_event_on_an_unknown_topic_is_dropped(stub: callback_grpc.AppCallbackStub) -> None:
    event = callback.TopicEventRequest(id="x", topic="elsewhere", data=b"{}")
    answer = await stub.OnTopicEvent(event, metadata=WITH_TOKEN)
    assert answer.status == callback.TopicEventResponse.DROP


async def test_batch_is_answered_per_entry(stub: callback_grpc.AppCallbackStub) -> None:
    not_an_outbox_message = callback.TopicEventCERequest(id="not-a-marker", data=b"{}")
    batch = callback.TopicEventBulkRequest(
        id="batch-1",
        topic=settings.OUTBOX_TOPIC,
        entries=[
            callback.TopicEventBulkRequestEntry(entry_id="a", cloud_event=not_an_outbox_message),
            callback.TopicEventBulkRequestEntry(entry_id="b", bytes=b"raw payload"),
        ],
    )
    answer = await stub.OnBulkTopicEvent(batch, metadata=WITH_TOKEN)
    assert {(s.entry_id, s.status) for s in answer.statuses} == {
        ("a", callback.TopicEventResponse.SUCCESS),
        ("b", callback.TopicEventResponse.SUCCESS),
    }


# What one traced entry of a batch adds to the call's headers, counted as HTTP/2 counts a
# header list (name + value + 32): a traceparent and a base64 grpc-trace-bin of 29 bytes.
TRACE_HEADERS_PER_ENTRY = (len("traceparent") + 55 + 32) + (len("grpc-trace-bin") + 40 + 32)
SETTINGS_FRAME = 0x4
SETTINGS_MAX_HEADER_LIST_SIZE = 0x6


async def test_the_server_takes_the_headers_of_a_full_traced_batch() -> None:
    # The sidecar's gRPC client refuses to send a call whose headers exceed the size the server
    # announces in its HTTP/2 SETTINGS, so the announced size must hold a full batch.
    port = free_port()
    sidecar = MemorySidecar()
    placer = Placer(repository(sidecar), _unreachable_exchange, 1, answer_deadline_seconds=3)
    release = OutboxRelease(repository(sidecar), sidecar, "markers", answer_deadline_seconds=3)
    server = await start_server(PlacerCallbacks(placer, release, TOKEN), "127.0.0.1", port)
    try:
        settings_sent = await _server_settings(port)
    finally:
        await server.stop(0)
    full_batch = OUTBOX_BATCH_SIZE * TRACE_HEADERS_PER_ENTRY
    assert settings_sent[SETTINGS_MAX_HEADER_LIST_SIZE] > full_batch


async def _server_settings(port: int) -> dict[int, int]:
    """The server's first SETTINGS frame, after a client's connection preface."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        empty_settings = bytes([0, 0, 0, SETTINGS_FRAME, 0, 0, 0, 0, 0])
        writer.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + empty_settings)
        header = await asyncio.wait_for(reader.readexactly(9), timeout=5)
        assert header[3] == SETTINGS_FRAME
        payload = await asyncio.wait_for(reader.readexactly(int.from_bytes(header[:3])), 5)
    finally:
        writer.close()
    return {
        int.from_bytes(payload[at : at + 2]): int.from_bytes(payload[at + 2 : at + 6])
        for at in range(0, len(payload), 6)
    }


@pytest.mark.parametrize("metadata", [(), (("dapr-api-token", "wrong"),)])
async def test_deliveries_without_the_app_token_are_refused(
    stub: callback_grpc.AppCallbackStub, metadata: tuple[tuple[str, str], ...]
) -> None:
    event = callback.TopicEventRequest(id="x", topic=settings.ORDERS_TOPIC, data=b"{}")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.OnTopicEvent(event, metadata=metadata)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    batch = callback.TopicEventBulkRequest(id="b", topic=settings.OUTBOX_TOPIC)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.OnBulkTopicEvent(batch, metadata=metadata)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_topics_are_listed_without_the_token(stub: callback_grpc.AppCallbackStub) -> None:
    # The runtime asks for them without it.
    listed = await stub.ListTopicSubscriptions(empty_pb2.Empty())
    assert len(listed.subscriptions) == 3


def test_event_data_is_parsed_from_json_or_left_out() -> None:
    order = {"id": "o-1"}
    assert event_of("e", json.dumps(order).encode()) == {"id": "e", "data": order}
    assert event_of("e", b"{broken") == {"id": "e", "data": None}
    assert event_of("e", b"plain text", "text/plain") == {"id": "e", "data": None}


ORDER_TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
SIDECAR_CHILD = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"
NEW_TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def delivery_with(**extensions: str) -> callback.TopicEventRequest:
    request = callback.TopicEventRequest(id="e-1", topic="orders")
    request.extensions.update(extensions)
    return request


def test_the_sidecars_span_is_continued_when_it_is_in_the_orders_trace() -> None:
    metadata = {"traceparent": SIDECAR_CHILD}
    carrier = trace_carrier(metadata, delivery_with(traceid=ORDER_TRACE, traceparent=""))
    assert carrier["traceparent"] == SIDECAR_CHILD


def test_the_orders_trace_wins_over_a_new_one_from_the_sidecar() -> None:
    # The outbox leaves the event's traceparent empty, and the sidecar then starts a new trace.
    metadata = {"traceparent": NEW_TRACE}
    carrier = trace_carrier(metadata, delivery_with(traceid=ORDER_TRACE, traceparent=""))
    assert carrier == {"traceparent": ORDER_TRACE}


def test_without_any_trace_nothing_is_continued() -> None:
    assert trace_carrier({}, delivery_with()) == {}


async def test_a_held_delivery_is_answered_before_the_calls_deadline() -> None:
    # The exchange is down: the delivery is held, and answered RETRY a second before the
    # deadline the sidecar gave the call (its resiliency timeout), not cut off by it.
    order = accepted_order()
    sidecar = MemorySidecar()
    store_order(sidecar, order)
    breaker = ExchangeBreaker(1, probe_interval_seconds=1000)
    breaker.record(CallResult.FAILED, time.monotonic())
    gate = ExchangeGate(breaker, max_order_age_seconds=1000)
    orders = repository(sidecar)
    placer = Placer(orders, _unreachable_exchange, 1, answer_deadline_seconds=3, gate=gate)
    release = OutboxRelease(orders, sidecar, "markers", answer_deadline_seconds=3)
    port = free_port()
    server = await start_server(PlacerCallbacks(placer, release, TOKEN), "127.0.0.1", port)
    event = callback.TopicEventRequest(
        id="x", topic=settings.ORDERS_TOPIC, data=order.model_dump_json().encode(),
        data_content_type="application/json",
    )  # fmt: skip
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = callback_grpc.AppCallbackStub(channel)
            answer = await stub.OnTopicEvent(
                event, metadata=WITH_TOKEN, timeout=DEADLINE_MARGIN_SECONDS + 0.5
            )
    finally:
        await server.stop(0)
    assert answer.status == callback.TopicEventResponse.RETRY
