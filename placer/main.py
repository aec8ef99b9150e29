"""The placer's ASGI application: `uvicorn placer.main:app`, behind its Dapr sidecar."""

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from dapr.ext.fastapi import DaprApp
from fastapi import Body, FastAPI, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from core.config import settings
from core.logs import configure_logging
from core.repository import OrderRepository
from core.sidecar import DaprSidecar
from placer.outbox_release import OutboxRelease
from placer.placement import Delivery, Placer
from placer.stock_exchange import place_order


class DeliveryAnswer(BaseModel):
    status: Delivery


class BatchEntry(BaseModel):
    """One message of a bulk delivery; `event` is its CloudEvent (or raw payload)."""

    model_config = ConfigDict(populate_by_name=True)

    entry_id: str = Field(alias="entryId")
    event: Any = None


class Batch(BaseModel):
    entries: list[BatchEntry]


class EntryAnswer(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    entry_id: str = Field(alias="entryId")
    status: Delivery


class BatchAnswer(BaseModel):
    statuses: list[EntryAnswer]


class Health(BaseModel):
    status: str


class PlacerDaprApp(DaprApp):
    def bulk_subscribe(self, *, pubsub: str, topic: str, route: str, max_messages: int) -> None:
        """Lists a subscription delivered in batches on GET /dapr/subscribe, beside the ones
        of DaprApp.subscribe (which has no bulk options); the route is the caller's."""
        bulk = {"enabled": True, "maxMessagesCount": max_messages}
        self._subscriptions.append(
            {"pubsubname": pubsub, "topic": topic, "route": route, "bulkSubscribe": bulk}
        )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    sidecar = DaprSidecar.of_this_app()
    orders = OrderRepository(sidecar, settings.PLACER_STATE_STORE)
    app.state.sidecar = sidecar
    app.state.outbox_release = OutboxRelease(
        orders,
        sidecar,
        settings.OUTBOX_MARKER_STORE,
        answer_deadline_seconds=settings.ORDER_TIMEOUT_SECONDS,
    )
    app.state.placer = Placer(
        orders,
        place_order,
        settings.PLACER_CONCURRENCY,
        answer_deadline_seconds=settings.ORDER_TIMEOUT_SECONDS,
    )
    yield
    await sidecar.aclose()


configure_logging(settings.LOG_LEVEL)
app = FastAPI(title="Order placer", lifespan=lifespan)
dapr_app = PlacerDaprApp(app)

CloudEvent = Annotated[dict[str, Any], Body()]


@app.middleware("http")
async def require_app_token(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Only the sidecar may deliver: it sends APP_API_TOKEN as `dapr-api-token`."""
    expected = settings.APP_API_TOKEN
    if expected and not request.url.path.startswith("/health/"):
        sent = request.headers.get("dapr-api-token", "")
        if not hmac.compare_digest(sent.encode(), expected.encode()):
            return JSONResponse({"detail": "Missing or wrong dapr-api-token"}, status_code=401)
    return await call_next(request)


def _placer(request: Request) -> Placer:
    placer: Placer = request.app.state.placer
    return placer


# The SDK's decorator is untyped (and registers the route rather than wrapping the handler).
@dapr_app.subscribe(  # type: ignore[untyped-decorator]
    pubsub=settings.PUBSUB,
    topic=settings.ORDERS_TOPIC,
    route="/events/orders",
    dead_letter_topic=settings.DEAD_LETTER_TOPIC,
)
async def on_order(event: CloudEvent, request: Request) -> DeliveryAnswer:
    return DeliveryAnswer(status=await _placer(request).place(event))


@dapr_app.subscribe(  # type: ignore[untyped-decorator]
    pubsub=settings.PUBSUB, topic=settings.DEAD_LETTER_TOPIC, route="/events/dead-letters"
)
async def on_dead_letter(event: CloudEvent, request: Request) -> DeliveryAnswer:
    return DeliveryAnswer(status=await _placer(request).dead_letter(event))


# In batches: a few calls to the store per batch (see placer/outbox_release.py). Large, so that
# the backlog of an outage is released in one go; in steady traffic a batch holds the orders
# that arrived while the one before waited out its API deadline (about 5 s of them).
OUTBOX_BATCH_SIZE = 500
dapr_app.bulk_subscribe(
    pubsub=settings.OUTBOX_PUBSUB,
    topic=settings.OUTBOX_TOPIC,
    route="/events/outbox",
    max_messages=OUTBOX_BATCH_SIZE,
)


@app.post("/events/outbox", tags=["PubSub"])
async def on_outbox_messages(batch: Batch, request: Request) -> BatchAnswer:
    release: OutboxRelease = request.app.state.outbox_release
    answers = await release.release_failed({entry.entry_id: entry.event for entry in batch.entries})
    return BatchAnswer(
        statuses=[EntryAnswer(entry_id=entry, status=status) for entry, status in answers.items()]
    )


@app.get("/health/live", tags=["health"])
async def live() -> Health:
    return Health(status="ok")


@app.get("/health/ready", tags=["health"])
async def ready(request: Request, response: Response) -> Health:
    sidecar: DaprSidecar = request.app.state.sidecar
    if await sidecar.is_ready(settings.READINESS_TIMEOUT_SECONDS):
        return Health(status="ok")
    response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Health(status="dapr sidecar not ready")
