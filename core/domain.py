"""The order: what a client sends, what we store, and what the placer reads from the topic."""

import math
import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic.config import JsonDict

from core.config import settings
from core.prices import DECIMAL_STRING, PLACES, TWO_PLACES_PATTERN, price_pattern

# Two letters (country), nine letters or digits, one check digit (ISO 6166).
ISIN_PATTERN = r"^[A-Z]{2}[A-Z0-9]{9}[0-9]$"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderStatus(StrEnum):
    ACCEPTED = "accepted"  # stored; its placement is guaranteed
    PLACED = "placed"  # the exchange accepted it
    FAILED = "failed"  # placement retries ran out; the order is dead-lettered
    REJECTED = "rejected"  # its client was answered 500, so it must never be placed


class Decision(StrEnum):
    """Whether an order goes to the exchange: recorded once, by whoever is first. The placer
    claims it (PLACE) before its first exchange call; the API voids it (VOID) when the client
    was answered 500 while its commit was in doubt."""

    PLACE = "place"
    VOID = "void"


def _json_number(value: object) -> object:
    # A quantity is a JSON number: "10" or true is a mistake, not a quantity. (10.0 is the
    # integer 10, as JSON Schema has it.)
    if isinstance(value, str | bool):
        raise ValueError("must be a JSON number, not a string or a boolean")
    return value


def _price(value: object) -> object:
    """A price as a JSON number or a decimal string ("101.25"), as pydantic decimals and most
    trading APIs take it; the range and the places are checked after this."""
    if isinstance(value, bool):
        raise ValueError("must be a number or a decimal string, not a boolean")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    if not isinstance(value, str):
        return value
    written = DECIMAL_STRING.fullmatch(value)
    if written is None:
        raise ValueError(
            'must be a number or a decimal string such as "101.25": digits without a leading '
            "zero, optionally a point and up to 2 digits; no sign, exponent or spaces"
        )
    if len(written.group(3) or "") > PLACES:
        raise ValueError(f"must have at most {PLACES} decimal places")
    return Decimal(value)


def _two_places(price: Decimal) -> str:
    return f"{price:.{PLACES}f}"


# Sent as a JSON number or a decimal string, answered as a string with two places ("99.10"):
# exact, whatever the client's JSON library does with binary floats. The stored and published
# order holds the same string; orders stored with a JSON number before still read back.
LimitPrice = Annotated[
    Decimal,
    Field(gt=0, le=settings.MAX_LIMIT_PRICE, decimal_places=PLACES),
    BeforeValidator(_price),
    PlainSerializer(_two_places, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "maximum": float(settings.MAX_LIMIT_PRICE),
                    "multipleOf": 0.01,
                },
                {"type": "string", "pattern": price_pattern(settings.MAX_LIMIT_PRICE)},
            ],
            "examples": ["101.25", 101.25],
        },
        mode="validation",
    ),
    WithJsonSchema(
        {"type": "string", "pattern": TWO_PLACES_PATTERN, "examples": ["101.25"]},
        mode="serialization",
    ),
]


# The limit_price rule in the OpenAPI document too, so clients and generated tests know it.
LIMIT_PRICE_RULE_SCHEMA: JsonDict = {
    "allOf": [
        {
            "if": {"properties": {"type": {"const": "limit"}}, "required": ["type"]},
            "then": {
                "required": ["limit_price"],
                "properties": {"limit_price": {"not": {"type": "null"}}},
            },
        },
        {
            "if": {"properties": {"type": {"const": "market"}}, "required": ["type"]},
            "then": {"properties": {"limit_price": {"type": "null"}}},
        },
    ]
}


class OrderRequest(BaseModel):
    """The body of POST /orders."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, json_schema_extra=LIMIT_PRICE_RULE_SCHEMA
    )

    type: OrderType
    side: Side
    instrument: Annotated[
        str,
        Field(
            min_length=12,
            max_length=12,
            pattern=ISIN_PATTERN,
            description="ISIN: two letters, nine letters or digits, one digit; upper case.",
            examples=["US0378331005"],
        ),
    ]
    limit_price: LimitPrice | None = Field(
        default=None,
        validate_default=True,
        description="Required for limit orders, forbidden for market orders. Sent as a JSON "
        'number or a decimal string ("101.25"); answered as a string with two decimal places.',
    )
    # Constraints before the validator: they stay in the JSON schema that way.
    quantity: Annotated[
        int, Field(gt=0, le=settings.MAX_QUANTITY, examples=[10]), BeforeValidator(_json_number)
    ]

    # A field validator (not a model one) so the error points at limit_price; `type` is
    # declared first, so it is already validated here.
    @field_validator("limit_price")
    @classmethod
    def _check_limit_price(
        cls, limit_price: Decimal | None, info: ValidationInfo
    ) -> Decimal | None:
        order_type = info.data.get("type")
        if order_type is OrderType.LIMIT and limit_price is None:
            raise ValueError("limit_price is required for limit orders")
        if order_type is OrderType.MARKET and limit_price is not None:
            raise ValueError("limit_price must not be set for market orders")
        return limit_price


# An order id as the service makes them: a UUID, lower case, with hyphens.
ORDER_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _new_order_id() -> str:
    return str(uuid.uuid4())


def is_order_id(value: str) -> bool:
    """Whether `value` could be the id of an order: any other string is none."""
    return ORDER_ID.fullmatch(value) is not None


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Order(OrderRequest):
    """An accepted order as stored, published to the placer and returned to clients."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(default_factory=_new_order_id)
    created_at: datetime = Field(default_factory=_utc_now)
    status: OrderStatus = OrderStatus.ACCEPTED
    failure_reason: str | None = None

    @classmethod
    def accept(cls, request: OrderRequest) -> "Order":
        return cls(**request.model_dump())

    def request(self) -> OrderRequest:
        """The order as its client sent it."""
        return OrderRequest.model_validate(self.model_dump(include=set(OrderRequest.model_fields)))


class OrderEventKind(StrEnum):
    ACCEPTED = "accepted"  # stored, its placement guaranteed
    ATTEMPT_FAILED = "attempt_failed"  # one call to the exchange failed; it will be retried
    PLACED = "placed"  # the exchange accepted the order
    DEAD_LETTERED = "dead_lettered"  # the retries ran out
    REDRIVEN = "redriven"  # sent for placement again after a dead letter
    REJECTED = "rejected"  # committed late, after its client was answered 500: never placed


class OrderEvent(BaseModel):
    """One step in an order's history."""

    model_config = ConfigDict(frozen=True)

    kind: OrderEventKind
    at: datetime = Field(default_factory=_utc_now)
    detail: str | None = None
