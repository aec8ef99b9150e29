"""Dependencies shared by the routes, as `Annotated` aliases."""

from typing import Annotated

from fastapi import Depends, Request

from core.repository import OrderRepository
from core.sidecar import DaprSidecar


def get_sidecar(request: Request) -> DaprSidecar:
    sidecar: DaprSidecar = request.app.state.sidecar
    return sidecar


def get_order_repository(request: Request) -> OrderRepository:
    orders: OrderRepository = request.app.state.orders
    return orders


SidecarDep = Annotated[DaprSidecar, Depends(get_sidecar)]
OrderRepositoryDep = Annotated[OrderRepository, Depends(get_order_repository)]
