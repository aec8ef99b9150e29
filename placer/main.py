"""The placer's ASGI application: `uvicorn placer.main:app`, behind its Dapr sidecar."""

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from dapr.ext.fastapi import DaprApp
from fastapi import Body, FastAPI, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from core.config import settings
from core.logs import configure_logging
from core.repository import OrderRepository
from core.sidecar import DaprSidecar
from placer.outbox_release import OutboxRelease
from placer.placement import Delivery, Placer
from placer.stock_exchange import place_order


class DeliveryAnswer(BaseModel):
    status: Delivery


class Health(BaseModel):
    status: str


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
dapr_app = DaprApp(app)

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


@dapr_app.subscribe(  # type: ignore[untyped-decorator]
    pubsub=settings.OUTBOX_PUBSUB, topic=settings.OUTBOX_TOPIC, route="/events/outbox"
)
async def on_outbox_message(event: CloudEvent, request: Request) -> DeliveryAnswer:
    release: OutboxRelease = request.app.state.outbox_release
    return DeliveryAnswer(status=await release.release_if_failed(event))


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
