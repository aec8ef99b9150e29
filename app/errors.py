"""What clients see when something fails after validation: a fixed message, never the cause."""

import logging

from pydantic import BaseModel
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

PLACEMENT_FAILED_MESSAGE = "Internal server error while placing the order"
GENERIC_FAILURE_MESSAGE = "Internal server error"


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
            logger.exception("%s %s failed: %r", scope["method"], scope["path"], error)
            if response_started:
                raise
            response = JSONResponse(
                status_code=500, content=ErrorMessage(message=failure_message(scope)).model_dump()
            )
            await response(scope, receive, send)
