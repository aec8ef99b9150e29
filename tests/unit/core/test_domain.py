from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from core.config import settings
from core.domain import Order, OrderRequest, OrderStatus
from tests.factories import WITHOUT, limit_order_body, market_order_body


def errors_for(body: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        OrderRequest.model_validate(body)
    return [(error["loc"], error["msg"]) for error in caught.value.errors()]


@pytest.mark.parametrize(
    "body",
    [
        limit_order_body(),
        limit_order_body(side="sell", limit_price=0.01),
        limit_order_body(quantity=7.0),  # an integer, in JSON's terms
        limit_order_body(limit_price=99, quantity=1),
        limit_order_body(limit_price=settings.MAX_LIMIT_PRICE),
        limit_order_body(quantity=settings.MAX_QUANTITY),
        market_order_body(),
        market_order_body(limit_price=None),
        market_order_body(instrument="GB00B03MLX29"),
    ],
)
def test_valid_orders_are_accepted(body: dict[str, Any]) -> None:
    request = OrderRequest.model_validate(body)
    assert request.instrument == body["instrument"]
    assert request.quantity == body["quantity"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (limit_order_body(type="stop"), "type"),
        (limit_order_body(side="short"), "side"),
        (limit_order_body(instrument="US037833100"), "instrument"),  # 11 characters
        (limit_order_body(instrument="US03783310055"), "instrument"),  # 13 characters
        (limit_order_body(instrument="us0378331005"), "instrument"),  # lower case
        (limit_order_body(instrument="1S0378331005"), "instrument"),  # country not letters
        (limit_order_body(instrument="US037833100X"), "instrument"),  # check digit not a digit
        (limit_order_body(instrument="US03783-1005"), "instrument"),
        (limit_order_body(instrument="ÜS0378331005"), "instrument"),
        (limit_order_body(instrument=378331005), "instrument"),
        (limit_order_body(limit_price=0), "limit_price"),
        (limit_order_body(limit_price=-1), "limit_price"),
        (limit_order_body(limit_price=10.001), "limit_price"),
        (limit_order_body(limit_price="abc"), "limit_price"),
        (limit_order_body(limit_price="101.25"), "limit_price"),
        (limit_order_body(limit_price=True), "limit_price"),
        (limit_order_body(limit_price=settings.MAX_LIMIT_PRICE + 1), "limit_price"),
        (limit_order_body(quantity=0), "quantity"),
        (limit_order_body(quantity=-5), "quantity"),
        (limit_order_body(quantity=1.5), "quantity"),
        (limit_order_body(quantity="10"), "quantity"),
        (limit_order_body(quantity=True), "quantity"),
        (limit_order_body(quantity=settings.MAX_QUANTITY + 1), "quantity"),
        (limit_order_body(quantity=WITHOUT), "quantity"),
        (limit_order_body(id="chosen-by-client"), "id"),
    ],
)
def test_invalid_fields_are_rejected_with_their_location(body: dict[str, Any], field: str) -> None:
    assert field in [location[-1] for location, _ in errors_for(body)]


def test_limit_order_without_limit_price_says_it_is_required() -> None:
    assert errors_for(limit_order_body(limit_price=WITHOUT)) == [
        (("limit_price",), "Value error, limit_price is required for limit orders")
    ]
    assert errors_for(limit_order_body(limit_price=None)) == [
        (("limit_price",), "Value error, limit_price is required for limit orders")
    ]


def test_market_order_with_limit_price_says_it_is_forbidden() -> None:
    assert errors_for(market_order_body(limit_price=10)) == [
        (("limit_price",), "Value error, limit_price must not be set for market orders")
    ]


def test_accepted_order_keeps_every_field_and_adds_id_time_and_status() -> None:
    request = OrderRequest.model_validate(limit_order_body(limit_price=12.30))
    order = Order.accept(request)
    assert order.model_dump(include=set(request.model_dump())) == request.model_dump()
    assert order.status is OrderStatus.ACCEPTED
    assert order.created_at.utcoffset() == timedelta(0)
    assert Order.accept(request).id != order.id


def test_order_json_round_trips_with_price_as_number() -> None:
    order = Order.accept(OrderRequest.model_validate(limit_order_body(limit_price=12.30)))
    document = order.model_dump(mode="json")
    assert document["limit_price"] == 12.3
    assert datetime.fromisoformat(document["created_at"]) == order.created_at
    assert Order.model_validate(document) == order
    assert Order.model_validate(document).limit_price == Decimal("12.3")
