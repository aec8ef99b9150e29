"""Signatures on published orders: only the key's holder makes one, and any change breaks it."""

import json

import pytest

from core.signing import SIGNATURE_FIELD, OrderSigner
from tests.factories import accepted_order

SIGNER = OrderSigner("a shared key")


def document() -> dict[str, object]:
    return accepted_order().model_dump(mode="json")


def test_a_signed_document_verifies_after_a_trip_through_json() -> None:
    signed = SIGNER.signed(document())
    # Through the broker its keys may come back in another order.
    reordered = dict(reversed(list(json.loads(json.dumps(signed)).items())))
    assert SIGNER.verified(reordered)


@pytest.mark.parametrize(
    "change",
    [
        {"quantity": 11},
        {"instrument": "US5949181045"},
        {"status": "placed"},
        {SIGNATURE_FIELD: "0" * 64},
        {"extra": "field"},
    ],
)
def test_a_changed_document_does_not_verify(change: dict[str, object]) -> None:
    assert not SIGNER.verified({**SIGNER.signed(document()), **change})


@pytest.mark.parametrize("data", [document(), None, "text", {SIGNATURE_FIELD: 1}])
def test_anything_unsigned_does_not_verify(data: object) -> None:
    assert not SIGNER.verified(data)


def test_another_key_does_not_verify() -> None:
    assert not OrderSigner("another key").verified(SIGNER.signed(document()))
