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
from placer.outbox_release import OutboxRelease
from placer.placement import Placer
from placer.stock_exchange import place_order
from placer.stream_trim import stream_trimmer

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
    trimmer = stream_trimmer(settings)
    trimming = None
    if trimmer is not None:
        trimming = asyncio.create_task(trimmer.run(settings.STREAM_TRIM_INTERVAL_SECONDS))
    yield
    if trimmer is not None and trimming is not None:
        trimming.cancel()
        await asyncio.gather(trimming, return_exceptions=True)
        await trimmer.aclose()
    await server.stop(STOP_GRACE_SECONDS)
    if exchange is not None:
        await exchange.aclose()
    await sidecar.aclose()
    app.state.tracer_provider.shutdown()  # exports the last spans


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
