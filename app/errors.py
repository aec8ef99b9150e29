"""What clients see when something fails: a fixed message after validation, never the cause
(app/middleware.py's InternalErrorMiddleware answers it), and FastAPI's 422 for invalid input."""

import json
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.responses import JSONResponse, Response
from starlette.types import Scope

PLACEMENT_FAILED_MESSAGE = "Internal server error while placing the order"
GENERIC_FAILURE_MESSAGE = "Internal server error"


class ErrorMessage(BaseModel):
    message: str


def failure_message(scope: Scope) -> str:
    placing = scope["method"] == "POST" and scope["path"].rstrip("/") == "/orders"
    return PLACEMENT_FAILED_MESSAGE if placing else GENERIC_FAILURE_MESSAGE


class AsciiJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped: a lone surrogate from the client (valid in
    a JSON string, not encodable as UTF-8) is echoed back instead of crashing the answer."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


async def validation_error_handler(request: Request, error: Exception) -> Response:
    """FastAPI's usual 422 body, safe for any input it echoes."""
    assert isinstance(error, RequestValidationError)
    return AsciiJSONResponse(status_code=422, content={"detail": jsonable_encoder(error.errors())})
