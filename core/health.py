"""Liveness and readiness probes."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import BaseModel

from core.config import settings
from core.sidecar import DaprSidecar


async def get_sidecar(request: Request) -> DaprSidecar:
    sidecar: DaprSidecar = request.app.state.sidecar
    return sidecar


SidecarDep = Annotated[DaprSidecar, Depends(get_sidecar)]

router = APIRouter(prefix="/health", tags=["health"])


class Health(BaseModel):
    status: str


@router.get("/live")
async def live() -> Health:
    """The process serves requests."""
    return Health(status="ok")


@router.get("/ready", responses={503: {"model": Health}})
async def ready(sidecar: SidecarDep, response: Response) -> Health:
    """Ready while the Dapr sidecar is: without it no order can be accepted."""
    if await sidecar.is_ready(settings.READINESS_TIMEOUT_SECONDS):
        return Health(status="ok")
    response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Health(status="dapr sidecar not ready")
