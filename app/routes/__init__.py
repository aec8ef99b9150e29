"""The API's routers, by resource."""

from fastapi import APIRouter

from app.routes import orders
from core import health

api_router = APIRouter()
api_router.include_router(orders.router)
api_router.include_router(health.router)
