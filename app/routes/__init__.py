"""The API's routers, by resource."""

from fastapi import APIRouter

from app.auth import UNAUTHORIZED, api_key_guard
from app.routes import health, orders


def api_router() -> APIRouter:
    """Every route; /orders behind an API key when keys are configured."""
    router = APIRouter()
    guard = api_key_guard()
    responses = UNAUTHORIZED if guard else None
    router.include_router(orders.router, dependencies=guard, responses=responses)
    router.include_router(health.router)
    return router
