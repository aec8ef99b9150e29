"""Optional client authentication: API keys in the X-API-Key header."""

import hmac
from typing import Annotated

from fastapi import HTTPException, Security, status
from fastapi.security import APIKeyHeader

from core.config import settings

API_KEY_HEADER = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="Required when the service has API_KEYS set; ignored otherwise.",
)


async def require_api_key(api_key: Annotated[str | None, Security(API_KEY_HEADER)]) -> None:
    """Lets a request through when keys are off or it carries one of them."""
    accepted = settings.api_keys()
    if not accepted:
        return
    # Compared in constant time, each key, so the timing tells nothing about any of them.
    sent = (api_key or "").encode()
    if not any(hmac.compare_digest(sent, key.encode()) for key in accepted):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="Missing or invalid API key (X-API-Key header)",
            headers={"WWW-Authenticate": "ApiKey"},
        )
