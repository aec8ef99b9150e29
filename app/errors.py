"""What clients see when something fails after validation: a fixed message, never the cause."""

import json
import logging
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.acceptance import OrderNotAcceptedError
from core.sidecar import SidecarError

logger = logging.getLogger(__name__)

PLACEMENT_FAILED_MESSAGE = "Internal server error while placing the order"
GENERIC_FAILURE_MESSAGE = "Internal server error"
# Failures of the store or the sidecar, already explained where they happened: one line each,
# not a traceback (an outage brings hundreds per second).
EXPECTED_FAILURES = (OrderNotAcceptedError, SidecarError)


class ErrorMessage(BaseModel):
    message: str


def failure_message(scope: Scope) -> str:
    placing = scope["method"] == "POST" and scope["path"].rstrip("/") == "/orders"
    return PLACEMENT_FAILED_MESSAGE if placing else GENERIC_FAILURE_MESSAGE


class InternalErrorMiddleware:
    """Turns any exception into a logged 500 with a fixed body.

    A pure ASGI middleware rather than an exception handler for `Exception`: Starlette
    re-raises after such a handler, and the server then drops the connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response_started = False

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as error:
            if isinstance(error, EXPECTED_FAILURES):
                logger.warning("%s %s failed: %r", scope["method"], scope["path"], error)
            else:
                logger.exception("%s %s failed: %r", scope["method"], scope["path"], error)
            if response_started:
                raise
            response = JSONResponse(
                status_code=500, content=ErrorMessage(message=failure_message(scope)).model_dump()
            )
            await response(scope, receive, send)


class AsciiJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped: a lone surrogate from the client (valid in
    a JSON string, not encodable as UTF-8) is echoed back instead of crashing the answer."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


async def validation_error_handler(request: Request, error: Exception) -> Response:
    """FastAPI's usual 422 body, safe for any input it echoes."""
    assert isinstance(error, RequestValidationError)
    return AsciiJSONResponse(status_code=422, content={"detail": jsonable_encoder(error.errors())})
