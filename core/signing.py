"""Signatures on the orders the API publishes: with one, the placer trusts the order its event
carries and claims it without reading it from the store first (placer/placement.py). An event
without a valid signature (one written to the broker by anyone else, or published before the
key was set) is read from the store like any other, and dropped if the store does not hold it."""

import hashlib
import hmac
import json
from typing import Any

SIGNATURE_FIELD = "signature"


class OrderSigner:
    """HMAC-SHA256, with the key both apps share (ORDER_SIGNING_KEY), over an order document's
    canonical JSON: the same bytes whatever order a JSON parser gives its keys."""

    def __init__(self, key: str) -> None:
        self._key = key.encode()

    def signed(self, document: dict[str, Any]) -> dict[str, Any]:
        """The document with its signature, as the API publishes it."""
        return {**document, SIGNATURE_FIELD: self._signature(document)}

    def verified(self, data: object) -> bool:
        """Whether `data` is a document that this key signed, unchanged since."""
        if not isinstance(data, dict) or not isinstance(data.get(SIGNATURE_FIELD), str):
            return False
        document = {key: value for key, value in data.items() if key != SIGNATURE_FIELD}
        return hmac.compare_digest(data[SIGNATURE_FIELD], self._signature(document))

    def _signature(self, document: dict[str, Any]) -> str:
        canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
        return hmac.new(self._key, canonical.encode(), hashlib.sha256).hexdigest()
