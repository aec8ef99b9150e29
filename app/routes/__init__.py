"""The API's routers, by resource (the health probes are both apps': core/health.py)."""

from fastapi import APIRouter

from app.routes import orders
from core import health

api_router = APIRouter()
api_router.include_router(orders.router)
api_router.include_router(health.router)
