"""Optional client authentication: API keys in the X-API-Key header."""

import hmac
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Security, params, status
from fastapi.security import APIKeyHeader

from core.config import settings

API_KEY_HEADER = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="One of the keys the service was given."
)
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"description": "None of the API keys was sent"}
}


def api_key_guard() -> list[params.Depends]:
    """What guards routes that need a key: the key check when API_KEYS is set, nothing when
    it is empty. Read when the app is made, so the OpenAPI document declares the X-API-Key
    requirement exactly when the service enforces it."""
    return [Depends(require_api_key)] if settings.api_keys() else []


async def require_api_key(api_key: Annotated[str | None, Security(API_KEY_HEADER)]) -> None:
    """Lets a request through when it carries one of the keys."""
    accepted = settings.api_keys()
    # Compared in constant time, each key, so the timing tells nothing about any of them.
    sent = (api_key or "").encode()
    if not any(hmac.compare_digest(sent, key.encode()) for key in accepted):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="Missing or invalid API key (X-API-Key header)",
            headers={"WWW-Authenticate": "ApiKey"},
        )
