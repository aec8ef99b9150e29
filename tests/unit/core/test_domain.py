import json
import re
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import ValidationError

from core.config import settings
from core.domain import Order, OrderRequest, OrderStatus, is_order_id
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
        limit_order_body(limit_price="101.25"),
        limit_order_body(limit_price="99.1"),
        limit_order_body(limit_price="0.01"),
        limit_order_body(limit_price="7"),
        limit_order_body(limit_price=str(settings.MAX_LIMIT_PRICE)),
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
        (limit_order_body(limit_price=True), "limit_price"),
        (limit_order_body(limit_price="0"), "limit_price"),
        (limit_order_body(limit_price="10.001"), "limit_price"),
        (limit_order_body(limit_price=str(settings.MAX_LIMIT_PRICE + 1)), "limit_price"),
        (limit_order_body(limit_price=[101.25]), "limit_price"),
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


@pytest.mark.parametrize(
    ("price", "message"),
    [
        ("1e3", "decimal string such as"),
        (" 5", "decimal string such as"),
        ("5 ", "decimal string such as"),
        ("5\n", "decimal string such as"),
        ("NaN", "decimal string such as"),
        ("Infinity", "decimal string such as"),
        ("-0", "decimal string such as"),
        ("-5", "decimal string such as"),
        ("+5", "decimal string such as"),
        ("", "decimal string such as"),
        ("05", "decimal string such as"),
        ("5.", "decimal string such as"),
        (".5", "decimal string such as"),
        ("1_000", "decimal string such as"),
        ("١٢", "decimal string such as"),  # Arabic-Indic digits
        ("99.123", "at most 2 decimal places"),
        (99.123, "no more than 2 decimal places"),
        (True, "not a boolean"),
        (False, "not a boolean"),
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        ("0.00", "greater than 0"),
        (-1, "greater than 0"),
    ],
)
def test_a_refused_price_says_why(price: object, message: str) -> None:
    [(location, text)] = errors_for(limit_order_body(limit_price=price))
    assert location == ("limit_price",)
    assert message in text


@pytest.mark.parametrize(
    ("price", "written"),
    [(99.1, "99.10"), ("99.1", "99.10"), ("99.10", "99.10"), (7, "7.00"), ("0.05", "0.05")],
)
def test_the_price_is_answered_as_a_string_with_two_places(price: object, written: str) -> None:
    order = Order.accept(OrderRequest.model_validate(limit_order_body(limit_price=price)))
    assert order.model_dump(mode="json")["limit_price"] == written
    assert json.loads(order.model_dump_json())["limit_price"] == written


def test_a_price_in_another_spelling_is_the_same_order() -> None:
    # What Idempotency-Key compares: a repeat may write the price differently.
    spellings = [99.1, 99.10, "99.1", "99.10"]
    requests = {OrderRequest.model_validate(limit_order_body(limit_price=p)) for p in spellings}
    assert len(requests) == 1
    assert OrderRequest.model_validate(limit_order_body(limit_price="99.11")) not in requests


def test_order_json_round_trips_with_the_price_as_a_string() -> None:
    order = Order.accept(OrderRequest.model_validate(limit_order_body(limit_price=12.30)))
    document = order.model_dump(mode="json")
    assert document["limit_price"] == "12.30"
    assert datetime.fromisoformat(document["created_at"]) == order.created_at
    assert Order.model_validate(document) == order
    assert Order.model_validate_json(order.model_dump_json()) == order
    assert Order.model_validate(document).limit_price == Decimal("12.3")


def test_order_stored_with_a_numeric_price_still_reads_back() -> None:
    order = Order.accept(OrderRequest.model_validate(limit_order_body(limit_price="12.30")))
    earlier = json.dumps({**order.model_dump(mode="json"), "limit_price": 12.3})
    assert Order.model_validate_json(earlier) == order
    assert Order.model_validate_json(earlier).model_dump(mode="json")["limit_price"] == "12.30"


@given(text=st.text(alphabet="0123456789.+-eE ", max_size=12))
@hypothesis_settings(max_examples=300, database=None)
def test_price_strings_are_accepted_exactly_when_the_documented_pattern_matches(
    text: str,
) -> None:
    pattern = OrderRequest.model_json_schema()["properties"]["limit_price"]["anyOf"][0]["anyOf"][1]
    documented = re.fullmatch(pattern["pattern"], text) is not None
    try:
        OrderRequest.model_validate(limit_order_body(limit_price=text))
    except ValidationError:
        accepted = False
    else:
        accepted = True
    assert accepted == documented


def test_the_schema_documents_both_forms_in_and_the_string_out() -> None:
    sent = OrderRequest.model_json_schema()["properties"]["limit_price"]["anyOf"][0]["anyOf"]
    assert [form["type"] for form in sent] == ["number", "string"]
    answered = Order.model_json_schema(mode="serialization")["properties"]["limit_price"]
    [string, null] = answered["anyOf"]
    assert null == {"type": "null"}
    assert string["type"] == "string"
    assert re.fullmatch(string["pattern"], "99.10")
    assert not re.fullmatch(string["pattern"], "99.1")


@pytest.mark.parametrize(
    ("value", "is_id"),
    [
        ("0b7c4f0e-4c1e-4ab0-9a53-5d0f4d2b0f11", True),
        ("0B7C4F0E-4C1E-4AB0-9A53-5D0F4D2B0F11", False),  # never written in upper case
        ("0b7c4f0e4c1e4ab09a535d0f4d2b0f11", False),
        ("{0b7c4f0e-4c1e-4ab0-9a53-5d0f4d2b0f11}", False),
        ("0b7c4f0e-4c1e-4ab0-9a53-5d0f4d2b0f11\n", False),
        ("does-not-exist-123", False),
        ("", False),
    ],
)
def test_order_ids_are_the_uuids_the_service_makes(value: str, is_id: bool) -> None:
    assert is_order_id(value) is is_id
    assert is_order_id(Order.accept(OrderRequest.model_validate(market_order_body())).id)
