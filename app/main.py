"""The order API's ASGI application, run by `python -m app` (app/__main__.py)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from app.docs import install_docs
from app.errors import validation_error_handler
from app.middleware import BodySizeLimitMiddleware, InternalErrorMiddleware, TelemetryMiddleware
from app.routes import api_router
from app.voids import PendingVoids
from core.config import settings
from core.logs import configure_logging
from core.repository import OrderRepository
from core.sidecar import DaprSidecar
from core.tracing import configure_tracing

SERVICE_NAME = "order-api"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    sidecar = DaprSidecar.of_this_app()
    app.state.sidecar = sidecar
    app.state.orders = OrderRepository(sidecar, settings.STATE_STORE, settings.order_signer())
    app.state.pending_voids = PendingVoids(app.state.orders)
    yield
    await app.state.pending_voids.aclose()
    await sidecar.aclose()
    app.state.tracer_provider.shutdown()  # exports the last spans


def create_app() -> FastAPI:
    configure_logging(settings.LOG_LEVEL, settings.LOG_FORMAT)
    tracer_provider = configure_tracing(SERVICE_NAME)
    app = FastAPI(
        title="Order service",
        summary="Places orders on the stock exchange: a 201 guarantees the placement.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # install_docs serves the pages without a CDN
        redoc_url=None,
        # TelemetryMiddleware makes the request's span and metrics (Prometheus, across
        # workers); FastAPI's own spans per dependency and serialisation would triple the spans
        # of every order for little news.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.MAX_BODY_BYTES)
    app.add_middleware(InternalErrorMiddleware)
    app.add_middleware(TelemetryMiddleware)  # added last: the outermost, sees every answer
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.include_router(api_router())
    install_docs(app)
    app.state.tracer_provider = tracer_provider
    return app


app = create_app()
