"""How the placer's sidecar reaches it: Dapr's app callback API over gRPC.

Over gRPC, not HTTP: daprd's HTTP app channel (dapr v1.18.1 to v1.18.3) swaps one shared
middleware chain per call (pkg/middleware/http/pipeline.go), so concurrent deliveries run each
other's handler closures. A delivery whose connection failed (a restarting placer) can then
come back as "200, empty body", which the runtime counts as SUCCESS, and Redis Streams
acknowledges an order the placer never saw. The gRPC channel has no such chain: a failed call
is an error, and the delivery is retried.
"""

import hmac
import json
import logging
from collections.abc import Mapping
from typing import Any

import grpc
from dapr.proto.runtime.v1 import appcallback_pb2 as callback
from dapr.proto.runtime.v1 import appcallback_pb2_grpc as callback_grpc
from google.protobuf import empty_pb2
from opentelemetry import trace

from core.config import settings
from core.tracing import context_from, trace_id_in
from placer.holding import delivery_deadline
from placer.outbox_release import OutboxRelease
from placer.placement import Delivery, Placer

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)
Context = grpc.aio.ServicerContext[Any, Any]

# In batches: a few calls to the store per batch (see placer/outbox_release.py). Large, so that
# the backlog of an outage is released in one go; in steady traffic a batch holds the orders
# that arrived while the one before waited out its API deadline (about 5 s of them).
OUTBOX_BATCH_SIZE = 500
# The headers a call may carry. The sidecar appends a traceparent and a grpc-trace-bin header
# for every traced entry of a batch (runtime: pkg/runtime/subscription/postman/grpc), about
# 200 bytes each once packed: gRPC's default of 16 KiB refuses a batch of more than about 80
# traced messages, before our code sees it. 1 MiB holds OUTBOX_BATCH_SIZE entries many times.
MAX_METADATA_BYTES = 1024 * 1024
# Seconds a stopping placer gives the deliveries in flight before it cancels them (the sidecar
# then delivers them again).
STOP_GRACE_SECONDS = 5.0

STATUSES = {
    Delivery.SUCCESS: callback.TopicEventResponse.SUCCESS,
    Delivery.RETRY: callback.TopicEventResponse.RETRY,
    Delivery.DROP: callback.TopicEventResponse.DROP,
}


def subscriptions() -> list[callback.TopicSubscription]:
    """The topics the sidecar delivers, as it reads them when it starts."""
    return [
        callback.TopicSubscription(
            pubsub_name=settings.PUBSUB,
            topic=settings.ORDERS_TOPIC,
            dead_letter_topic=settings.DEAD_LETTER_TOPIC,
        ),
        callback.TopicSubscription(pubsub_name=settings.PUBSUB, topic=settings.DEAD_LETTER_TOPIC),
        callback.TopicSubscription(
            pubsub_name=settings.OUTBOX_PUBSUB,
            topic=settings.OUTBOX_TOPIC,
            bulk_subscribe=callback.BulkSubscribeConfig(
                enabled=True, max_messages_count=OUTBOX_BATCH_SIZE
            ),
        ),
    ]


def event_of(event_id: str, data: bytes, content_type: str = "application/json") -> dict[str, Any]:
    """A delivered event in the shape placement reads: its id, and its data parsed from JSON
    (None when it is not JSON: such a message is no order)."""
    parsed: Any = None
    if "json" in content_type or not content_type:
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = None
    return {"id": event_id, "data": parsed}


def bulk_event_of(entry: callback.TopicEventBulkRequestEntry) -> dict[str, Any]:
    if entry.WhichOneof("event") == "cloud_event":
        cloud_event = entry.cloud_event
        return event_of(cloud_event.id, cloud_event.data, cloud_event.data_content_type)
    # A raw entry is the whole CloudEvent as JSON.
    try:
        whole = json.loads(entry.bytes)
    except ValueError:
        return {"id": entry.entry_id, "data": None}
    return whole if isinstance(whole, dict) else {"id": entry.entry_id, "data": None}


def metadata_of(context: Context) -> dict[str, str]:
    """The call's text metadata (binary `-bin` entries left out)."""
    return {
        key: value for key, value in context.invocation_metadata() or () if isinstance(value, str)
    }


def trace_carrier(
    metadata: Mapping[str, str], request: callback.TopicEventRequest
) -> dict[str, str]:
    """The delivery's W3C trace context. The CloudEvent carries the order's trace (`traceid`,
    set by the API's sidecar); the sidecar sends its own delivery span as `traceparent`
    metadata, a child of that trace, except when the event's `traceparent` field is empty (the
    runtime's outbox writes it so): then the metadata starts a new trace, and the event's
    `traceid` is the one to continue."""
    fields = request.extensions.fields
    event_trace = next(
        (fields[name].string_value for name in ("traceparent", "traceid")
         if name in fields and fields[name].string_value),
        None,
    )  # fmt: skip
    if event_trace is None:
        return dict(metadata)
    event_carrier = {"traceparent": event_trace}
    return dict(metadata) if trace_id_in(metadata) == trace_id_in(event_carrier) else event_carrier


class PlacerCallbacks(callback_grpc.AppCallbackServicer):
    """Answers the sidecar's deliveries; refuses deliveries without the app token."""

    def __init__(self, placer: Placer, release: OutboxRelease, app_token: str | None) -> None:
        self._placer = placer
        self._release = release
        self._app_token = app_token

    async def ListTopicSubscriptions(
        self, request: empty_pb2.Empty, context: Context
    ) -> callback.ListTopicSubscriptionsResponse:
        # No token check: the runtime lists topics without one (and they are no secret).
        return callback.ListTopicSubscriptionsResponse(subscriptions=subscriptions())

    async def OnTopicEvent(
        self, request: callback.TopicEventRequest, context: Context
    ) -> callback.TopicEventResponse:
        metadata = metadata_of(context)
        await self._check_token(metadata, context)
        event = event_of(request.id, request.data, request.data_content_type)
        # The order's trace, as the sidecar delivers it: the same trace as its POST /orders.
        parent = context_from(trace_carrier(metadata, request))
        with (
            tracer.start_as_current_span(
                f"deliver {request.topic}", context=parent, kind=trace.SpanKind.CONSUMER
            ),
            # The resiliency policy's timeout for this attempt: how long a hold may last.
            delivery_deadline(context.time_remaining()),
        ):
            answer = await self._deliver(request.topic, event)
        return callback.TopicEventResponse(status=STATUSES[answer])

    async def _deliver(self, topic: str, event: dict[str, Any]) -> Delivery:
        if topic == settings.ORDERS_TOPIC:
            return await self._placer.place(event)
        if topic == settings.DEAD_LETTER_TOPIC:
            return await self._placer.dead_letter(event)
        logger.error("event %s on unknown topic %r: dropped", event["id"], topic)
        return Delivery.DROP

    async def OnBulkTopicEvent(
        self, request: callback.TopicEventBulkRequest, context: Context
    ) -> callback.TopicEventBulkResponse:
        await self._check_token(metadata_of(context), context)
        events = {entry.entry_id: bulk_event_of(entry) for entry in request.entries}
        answers: Mapping[str, Delivery] = await self._release.release_failed(events)
        return callback.TopicEventBulkResponse(
            statuses=[
                callback.TopicEventBulkResponseEntry(entry_id=entry, status=STATUSES[answer])
                for entry, answer in answers.items()
            ]
        )

    async def _check_token(self, metadata: Mapping[str, str], context: Context) -> None:
        """Only the sidecar may deliver: it sends APP_API_TOKEN as `dapr-api-token`."""
        if not self._app_token:
            return
        sent = metadata.get("dapr-api-token", "").encode()
        if not hmac.compare_digest(sent, self._app_token.encode()):
            # Not UNIMPLEMENTED: the runtime drops a delivery answered with that code.
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "Missing or wrong dapr-api-token")


async def start_server(servicer: PlacerCallbacks, host: str, port: int) -> grpc.aio.Server:
    limits = [
        ("grpc.max_metadata_size", MAX_METADATA_BYTES),
        ("grpc.absolute_max_metadata_size", MAX_METADATA_BYTES),
    ]
    server = grpc.aio.server(options=limits)
    callback_grpc.add_AppCallbackServicer_to_server(servicer, server)
    server.add_insecure_port(f"{host}:{port}")
    await server.start()
    return server
