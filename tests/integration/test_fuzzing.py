"""Generated input against the real API, with API keys on and off: never a 5xx caused by input,
and every answer matches the OpenAPI document, under every check schemathesis has (its
`--checks all`: valid input accepted, invalid input refused, a declared key enforced and no key
declared that is not, ...). Schemathesis drives hypothesis from our own schema."""

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from devstack.config import StateStoreKind
from tests.integration.stack_fixtures import RunningStack, running_stack

EXAMPLES_PER_OPERATION = 60
API_KEY = "fuzzing-client-key"
UNICODE_ESCAPES = (
    b'{"type": "market", "side": "buy", "instrument": "\\u0000\\ud800", "quantity": 1}'
)
# Every check, as the command line's `--checks all` enables them; a timeout on every call.
SCHEMATHESIS_CONFIG = {"checks": {"enabled": True}, "request-timeout": 30}


@pytest.fixture(scope="module", params=["keys-on", "keys-off"])
def fuzz_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    """With client API keys on, as in production: the authentication checks send calls without
    a key and with a wrong one, which must be refused. With keys off, the default: nothing may
    ask for a key that the service then does not need."""
    keys_on = request.param == "keys-on"
    tmp: Path = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    env = {"EXCHANGE_FAILURE_RATE": "0", "EXCHANGE_LATENCY_SECONDS": "0.01"}
    with running_stack(
        tmp, StateStoreKind.REDIS, app_env=env | ({"API_KEYS": API_KEY} if keys_on else {})
    ) as stack:
        if keys_on:
            stack.client.headers["X-API-Key"] = API_KEY
        yield stack


@pytest.fixture(scope="module")
def api_schema(fuzz_stack: RunningStack) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(
        f"{fuzz_stack.stack.api.url}/openapi.json",
        config=schemathesis.Config.from_dict(SCHEMATHESIS_CONFIG),
        timeout=10,
    )


@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode), ids=lambda mode: mode.value)
@pytest.mark.parametrize(
    ("path", "method"),
    [("/orders", "POST"), ("/orders/{order_id}", "GET"), ("/orders/{order_id}/events", "GET")],
)
def test_orders_api_never_fails_on_input(
    api_schema: schemathesis.BaseSchema, path: str, method: str, mode: schemathesis.GenerationMode
) -> None:
    """Checks every generated case, valid ones and invalid ones, for: no 5xx, a documented
    status code, a body that matches the response schema, and schemathesis's other checks."""
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def check(case: schemathesis.Case[Any]) -> None:
        if case.headers and "Idempotency-Key" in case.headers:
            # Generated keys repeat across unrelated bodies, which is rightly a 422: one key
            # per case keeps the header in play without that.
            case.headers["Idempotency-Key"] = str(uuid.uuid4())
        if case.headers and "X-API-Key" in case.headers:
            case.headers["X-API-Key"] = API_KEY  # a generated key would only ever get a 401
        case.call_and_validate()

    check()


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{" * 10_000 + b"}" * 10_000, "application/json"),  # deeply nested
        (UNICODE_ESCAPES, "application/json"),
        ('{"instrument": "ÄÖÜ0378331005"}'.encode(), "application/json"),
        (b"\xff\xfe\x00garbage", "application/json"),
        (b"<order/>", "application/xml"),
        (b"type=market", "text/plain"),
    ],
)
def test_hostile_bodies_get_a_clear_4xx_and_store_nothing(
    fuzz_stack: RunningStack, content: bytes, content_type: str
) -> None:
    before = fuzz_stack.stores.stored_order_count()
    response = fuzz_stack.client.post(
        "/orders", content=content, headers={"content-type": content_type}
    )
    assert 400 <= response.status_code < 500
    assert response.json()["detail"]
    assert fuzz_stack.stores.stored_order_count() == before


def test_huge_body_is_refused_unread(fuzz_stack: RunningStack) -> None:
    response = httpx.post(
        f"{fuzz_stack.stack.api.url}/orders",
        content=b"[" + b"1," * 5_000_000 + b"1]",
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413
