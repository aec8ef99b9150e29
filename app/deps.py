"""Dependencies shared by the routes, as `Annotated` aliases.

All `async def`: FastAPI runs a plain `def` dependency in its thread pool, a thread hand-off per
dependency and request for what is an attribute lookup."""

from typing import Annotated

from fastapi import Depends, Request

from app.voids import PendingVoids
from core.repository import OrderRepository


async def get_order_repository(request: Request) -> OrderRepository:
    orders: OrderRepository = request.app.state.orders
    return orders


async def get_pending_voids(request: Request) -> PendingVoids:
    voids: PendingVoids = request.app.state.pending_voids
    return voids


OrderRepositoryDep = Annotated[OrderRepository, Depends(get_order_repository)]
PendingVoidsDep = Annotated[PendingVoids, Depends(get_pending_voids)]
