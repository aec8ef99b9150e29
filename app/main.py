"""The order API's ASGI application: `uvicorn app.main:app`."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from app.body_limit import BodySizeLimitMiddleware
from app.errors import InternalErrorMiddleware, validation_error_handler
from app.routes import api_router
from app.voids import PendingVoids
from core.config import settings
from core.logs import configure_logging
from core.repository import OrderRepository
from core.sidecar import DaprSidecar


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    sidecar = DaprSidecar.of_this_app()
    app.state.sidecar = sidecar
    app.state.orders = OrderRepository(sidecar, settings.STATE_STORE)
    app.state.pending_voids = PendingVoids(app.state.orders)
    yield
    await app.state.pending_voids.aclose()
    await sidecar.aclose()


def create_app() -> FastAPI:
    configure_logging(settings.LOG_LEVEL)
    app = FastAPI(
        title="Order service",
        summary="Places orders on the stock exchange: a 201 guarantees the placement.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.MAX_BODY_BYTES)
    app.add_middleware(InternalErrorMiddleware)  # added last: the outermost
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.include_router(api_router)
    return app


app = create_app()
