"""The placer's ASGI application, run by `python -m placer` (placer/__main__.py). Its sidecar
delivers orders to the gRPC callback server it starts (placer/callbacks.py, on
PLACER_GRPC_PORT); this HTTP app serves its health."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from core import health
from core.config import settings
from core.logs import configure_logging
from core.repository import OrderRepository
from core.sidecar import DaprSidecar
from core.tracing import configure_tracing
from placer.callbacks import STOP_GRACE_SECONDS, PlacerCallbacks, start_server
from placer.exchange_client import ExchangeClient
from placer.handback import StrandedHandback
from placer.outbox_release import OutboxRelease
from placer.placement import Placer
from placer.stock_exchange import place_order
from placer.stream_trim import StreamTrimmer, redis_client, stream_trimmer

SERVICE_NAME = "order-placer"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    sidecar = DaprSidecar.of_this_app()
    orders = OrderRepository(sidecar, settings.PLACER_STATE_STORE)
    release = OutboxRelease(
        orders,
        sidecar,
        settings.OUTBOX_MARKER_STORE,
        answer_deadline_seconds=settings.ORDER_TIMEOUT_SECONDS,
    )
    exchange = exchange_client()
    placer = Placer(
        orders,
        place_order if exchange is None else exchange.place_order,
        settings.PLACER_CONCURRENCY,
        answer_deadline_seconds=settings.ORDER_TIMEOUT_SECONDS,
        retries_at_once=settings.PLACER_RETRIES_AT_ONCE,
        signer=settings.order_signer(),
    )
    app.state.sidecar = sidecar
    callbacks = PlacerCallbacks(placer, release, settings.APP_API_TOKEN)
    server = await start_server(callbacks, settings.PLACER_HOST, settings.PLACER_GRPC_PORT)
    # The upkeep of the streams on their Redis, each its own loop: trimming, and the hand-back.
    upkeep: list[tuple[StreamTrimmer | StrandedHandback, asyncio.Task[None]]] = []
    if (trimmer := stream_trimmer(settings)) is not None:
        job = trimmer.run(settings.STREAM_TRIM_INTERVAL_SECONDS)
        upkeep.append((trimmer, asyncio.create_task(job)))
    if (handback := stranded_handback(orders, placer)) is not None:
        job = handback.run(settings.STRANDED_CHECK_INTERVAL_SECONDS)
        upkeep.append((handback, asyncio.create_task(job)))
    yield
    for _, task in upkeep:
        task.cancel()
    await asyncio.gather(*(task for _, task in upkeep), return_exceptions=True)
    for worker, _ in upkeep:
        await worker.aclose()
    await server.stop(STOP_GRACE_SECONDS)
    if exchange is not None:
        await exchange.aclose()
    await sidecar.aclose()
    app.state.tracer_provider.shutdown()  # exports the last spans


def stranded_handback(orders: OrderRepository, placer: Placer) -> StrandedHandback | None:
    """The hand-back of stranded deliveries on the streams' Redis; None when it is off (no
    STREAMS_REDIS_HOST, or an interval of 0)."""
    if settings.STREAMS_REDIS_HOST is None or not settings.STRANDED_CHECK_INTERVAL_SECONDS:
        return None
    return StrandedHandback(
        redis_client(settings.STREAMS_REDIS_HOST, settings),
        orders,
        settings.ORDERS_TOPIC,
        after_seconds=settings.STRANDED_AFTER_SECONDS,
        timeout_seconds=settings.STREAM_TRIM_TIMEOUT_SECONDS,
        paused=lambda: placer.exchange_down,
    )


def exchange_client() -> ExchangeClient | None:
    """The client of the shared exchange stand-in when EXCHANGE_URL names one; None: the
    placer places on the stand-in in its own process."""
    if settings.EXCHANGE_URL is None:
        return None
    return ExchangeClient(
        settings.EXCHANGE_URL,
        timeout_seconds=settings.EXCHANGE_TIMEOUT_SECONDS,
        max_connections=settings.PLACER_CONCURRENCY,
    )


def create_app() -> FastAPI:
    configure_logging(settings.LOG_LEVEL, settings.LOG_FORMAT)
    tracer_provider = configure_tracing(SERVICE_NAME)
    app = FastAPI(
        title="Order placer",
        summary="Places the accepted orders on the exchange, as its sidecar delivers them.",
        version="0.1.0",
        lifespan=lifespan,
        # Health probes only: no spans or FastAPI metrics for them (the deliveries have theirs).
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.include_router(health.router)
    app.state.tracer_provider = tracer_provider
    return app


app = create_app()
