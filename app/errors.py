"""What clients see when something fails after validation: a fixed message, never the cause."""

import logging

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

logger = logging.getLogger(__name__)

PLACEMENT_FAILED_MESSAGE = "Internal server error while placing the order"
GENERIC_FAILURE_MESSAGE = "Internal server error"


class ErrorMessage(BaseModel):
    message: str


def failure_message(request: Request) -> str:
    placing = request.method == "POST" and request.url.path.rstrip("/") == "/orders"
    return PLACEMENT_FAILED_MESSAGE if placing else GENERIC_FAILURE_MESSAGE


async def internal_error_handler(request: Request, error: Exception) -> JSONResponse:
    logger.error(
        "%s %s failed: %r", request.method, request.url.path, error, exc_info=error
    )
    return JSONResponse(
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
        content=ErrorMessage(message=failure_message(request)).model_dump(),
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Exception, internal_error_handler)
