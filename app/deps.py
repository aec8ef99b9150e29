"""Dependencies shared by the routes, as `Annotated` aliases."""

from typing import Annotated

from fastapi import Depends, Request

from app.voids import PendingVoids
from core.repository import OrderRepository
from core.sidecar import DaprSidecar


def get_sidecar(request: Request) -> DaprSidecar:
    sidecar: DaprSidecar = request.app.state.sidecar
    return sidecar


def get_order_repository(request: Request) -> OrderRepository:
    orders: OrderRepository = request.app.state.orders
    return orders


def get_pending_voids(request: Request) -> PendingVoids:
    voids: PendingVoids = request.app.state.pending_voids
    return voids


SidecarDep = Annotated[DaprSidecar, Depends(get_sidecar)]
OrderRepositoryDep = Annotated[OrderRepository, Depends(get_order_repository)]
PendingVoidsDep = Annotated[PendingVoids, Depends(get_pending_voids)]
