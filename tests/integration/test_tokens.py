"""The sidecar and the placer refuse callers without their tokens."""

import httpx

from tests.integration.stack_fixtures import RunningStack


def test_sidecar_refuses_calls_without_the_api_token(healthy_stack: RunningStack) -> None:
    url = f"{healthy_stack.stack.api.dapr_url}/v1.0/state/orderstore/order-x"
    assert httpx.get(url, timeout=5).status_code == 401
    token = {"dapr-api-token": healthy_stack.options.dapr_api_token or ""}
    assert httpx.get(url, headers=token, timeout=5).status_code in (200, 204)


def test_placer_refuses_deliveries_without_the_app_token(healthy_stack: RunningStack) -> None:
    url = f"{healthy_stack.stack.placer.url}/events/orders"
    event = {"id": "forged", "data": {"id": "forged"}}
    assert httpx.post(url, json=event, timeout=5).status_code == 401
    wrong = {"dapr-api-token": "guess"}
    assert httpx.post(url, json=event, headers=wrong, timeout=5).status_code == 401
    assert httpx.get(f"{healthy_stack.stack.placer.url}/health/live", timeout=5).status_code == 200
