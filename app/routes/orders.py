"""POST /orders and GET /orders/{order_id}."""

import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status

from app.deps import OrderRepositoryDep
from app.errors import ErrorMessage
from core.domain import Order, OrderRequest

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/orders", tags=["orders"])

OrderId = Annotated[str, Path(max_length=64, pattern=r"^[0-9a-f-]+$")]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={500: {"model": ErrorMessage, "description": "The order was not accepted"}},
)
async def create_order(request: OrderRequest, orders: OrderRepositoryDep) -> Order:
    """Accepts an order. A 201 means it is stored and will reach the exchange; its placement
    happens afterwards, so the exchange's speed and failures never show here."""
    order = Order.accept(request)
    await orders.create(order)
    logger.info("order %s accepted", order.id)
    return order


@router.get("/{order_id}", responses={404: {"description": "No order has this id"}})
async def read_order(order_id: OrderId, orders: OrderRepositoryDep) -> Order:
    """The order with its placement status: accepted, then placed (or failed)."""
    order = await orders.get(order_id)
    if order is None:
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="Order not found")
    return order
