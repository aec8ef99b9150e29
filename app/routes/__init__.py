"""The API's routers, by resource (the health probes are both apps': core/health.py)."""

from fastapi import APIRouter

from app.auth import UNAUTHORIZED, api_key_guard
from app.routes import orders
from core import health


def api_router() -> APIRouter:
    """Every route; /orders behind an API key when keys are configured."""
    router = APIRouter()
    guard = api_key_guard()
    responses = UNAUTHORIZED if guard else None
    router.include_router(orders.router, dependencies=guard, responses=responses)
    router.include_router(health.router)
    return router
