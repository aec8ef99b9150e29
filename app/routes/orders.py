"""POST /orders and GET /orders/{order_id}."""

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Response, status
from fastapi.exceptions import RequestValidationError
from opentelemetry import trace

from app.acceptance import IdempotencyKeyReusedError, accept_order
from app.deps import OrderRepositoryDep, PendingVoidsDep
from app.errors import ErrorMessage
from app.metrics import ORDERS_ACCEPTED
from core.config import settings
from core.domain import Order, OrderEvent, OrderRequest, is_order_id

logger = logging.getLogger(__name__)

# Behind an API key when keys are configured: see app/routes/__init__.py.
router = APIRouter(prefix="/orders", tags=["orders"])

MAX_ORDER_ID_LENGTH = 64
OrderId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_ORDER_ID_LENGTH,
        description="The id POST /orders answered (a UUID). Any other id is no order: 404; "
        f"an id over {MAX_ORDER_ID_LENGTH} characters is a malformed request: 422.",
    ),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=settings.MAX_IDEMPOTENCY_KEY_LENGTH,
        description="Repeating a request with the same key and the same order returns the "
        "first order and creates nothing new (for IDEMPOTENCY_RETENTION_SECONDS, a day by "
        'default). A price in another spelling is the same order: 99.1, 99.10 and "99.10".',
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


async def stored_order(order_id: OrderId, orders: OrderRepositoryDep) -> Order:
    """The order with this id, or a 404. Ids are the server's UUIDs: any other id is answered
    without reading the store, and never becomes part of a state key."""
    order = await orders.get(order_id) if is_order_id(order_id) else None
    if order is None:
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="Order not found")
    return order


StoredOrder = Annotated[Order, Depends(stored_order)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No order has this id"}}


@router.get("/{order_id}", responses=NOT_FOUND)
async def read_order(order: StoredOrder) -> Order:
    """The order with its placement status: accepted, then placed (or failed)."""
    return order


@router.get("/{order_id}/events", responses=NOT_FOUND)
async def read_order_events(order: StoredOrder, orders: OrderRepositoryDep) -> list[OrderEvent]:
    """The order's history, oldest first: accepted, each failed placement attempt, then
    placed (or dead-lettered, and re-driven)."""
    return await orders.events(order)
