"""POST /orders and GET /orders/{order_id}."""

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Response, status
from fastapi.exceptions import RequestValidationError
from opentelemetry import trace

from app.acceptance import IdempotencyKeyReusedError, accept_order
from app.auth import require_api_key
from app.deps import OrderRepositoryDep, PendingVoidsDep
from app.errors import ErrorMessage
from app.metrics import ORDERS_ACCEPTED
from core.config import settings
from core.domain import Order, OrderEvent, OrderRequest

logger = logging.getLogger(__name__)

router = APIRouter(
    prefix="/orders",
    tags=["orders"],
    dependencies=[Depends(require_api_key)],
    responses={401: {"description": "API keys are on and none of them was sent"}},
)

OrderId = Annotated[str, Path(max_length=64, pattern=r"^[0-9a-f-]+$")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=settings.MAX_IDEMPOTENCY_KEY_LENGTH,
        description="Repeating a request with the same key and body returns the first order "
        "and creates nothing new (for IDEMPOTENCY_RETENTION_SECONDS, a day by default).",
    ),
]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        400: {"description": "The body is not JSON text"},
        413: {"description": "The body is larger than MAX_BODY_BYTES"},
        500: {"model": ErrorMessage, "description": "The order was not accepted"},
    },
)
async def create_order(
    request: OrderRequest,
    orders: OrderRepositoryDep,
    voids: PendingVoidsDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> Order:
    """Accepts an order. A 201 means it is stored and will reach the exchange; its placement
    happens afterwards, so the exchange's speed and failures never show here."""
    try:
        acceptance = await accept_order(request, idempotency_key, orders, voids)
    except IdempotencyKeyReusedError as error:
        # Shaped like every other 422, so clients handle one error format.
        raise RequestValidationError(
            [
                {
                    "type": "idempotency_key_reused",
                    "loc": ("header", "Idempotency-Key"),
                    "msg": "This Idempotency-Key was already used for a different order",
                    "input": idempotency_key,
                }
            ]
        ) from error
    order_id = acceptance.order.id
    trace.get_current_span().set_attribute("order.id", order_id)
    if acceptance.replayed:
        response.headers["Idempotent-Replayed"] = "true"
        logger.info("order %s: replayed", order_id, extra={"order_id": order_id})
    else:
        ORDERS_ACCEPTED.inc()
        logger.info("order %s: accepted", order_id, extra={"order_id": order_id})
    return acceptance.order


@router.get("/{order_id}", responses={404: {"description": "No order has this id"}})
async def read_order(order_id: OrderId, orders: OrderRepositoryDep) -> Order:
    """The order with its placement status: accepted, then placed (or failed)."""
    order = await orders.get(order_id)
    if order is None:
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="Order not found")
    return order


@router.get("/{order_id}/events", responses={404: {"description": "No order has this id"}})
async def read_order_events(order_id: OrderId, orders: OrderRepositoryDep) -> list[OrderEvent]:
    """The order's history, oldest first: accepted, each failed placement attempt, then
    placed (or dead-lettered, and re-driven)."""
    order = await orders.get(order_id)
    if order is None:
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="Order not found")
    return await orders.events(order)
