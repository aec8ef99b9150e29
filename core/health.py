"""Liveness and readiness probes, the same for both apps: each is ready while its Dapr sidecar
(in `app.state.sidecar`) is."""

from typing import Annotated, Protocol

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import BaseModel

from core.config import settings


class Health(BaseModel):
    status: str


class Probed(Protocol):
    """What the probe asks of the sidecar's client."""

    async def is_ready(self, timeout_seconds: float) -> bool: ...


async def get_sidecar(request: Request) -> Probed:
    sidecar: Probed = request.app.state.sidecar
    return sidecar


router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live")
async def live() -> Health:
    """The process serves requests."""
    return Health(status="ok")


@router.get("/ready", responses={503: {"model": Health}})
async def ready(sidecar: Annotated[Probed, Depends(get_sidecar)], response: Response) -> Health:
    """Ready while the Dapr sidecar is: without it no order is accepted or placed."""
    if await sidecar.is_ready(settings.READINESS_TIMEOUT_SECONDS):
        return Health(status="ok")
    response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Health(status="dapr sidecar not ready")
