"""Order bodies for tests: valid by default, with any field replaced or removed."""

from typing import Any

from core.domain import Order, OrderRequest

# As a field's value, drops the field: limit_order_body(limit_price=WITHOUT).
WITHOUT = object()


def limit_order_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "limit",
        "side": "buy",
        "instrument": "US0378331005",
        "limit_price": 101.25,
        "quantity": 10,
    }
    return _apply(body, changes)


def market_order_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "market",
        "side": "sell",
        "instrument": "DE000BASF111",
        "quantity": 3,
    }
    return _apply(body, changes)


def accepted_order(**changes: Any) -> Order:
    return Order.accept(OrderRequest.model_validate(limit_order_body(**changes)))


def _apply(body: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    for name, value in changes.items():
        if value is WITHOUT:
            body.pop(name, None)
        else:
            body[name] = value
    return body
