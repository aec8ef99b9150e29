"""Metrics, traces and logs of the real stack: the counts move by what the orders did, one
trace follows an order from POST /orders to the exchange call, and the placer's log says so."""

import json
import re
import shutil
from pathlib import Path

import yaml

from devstack.config import StateStoreKind
from devstack.processes import free_port
from devstack.stack import COMPONENTS_DIR
from tests.factories import limit_order_body, market_order_body
from tests.integration.stack_fixtures import (
    ONE_CALL_A_DELIVERY,
    RunningStack,
    fast_retry_components,
    running_stack,
)
from tests.polling import wait_for
from tests.telemetry import ReceivedSpan, log_lines, otlp_receiver, scrape, value

CLIENT_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_TRACEPARENT = f"00-{CLIENT_TRACE_ID}-00f067aa0ba902b7-01"


def _placer_lines(stack: RunningStack, order_id: str) -> list[dict[str, object]]:
    assert stack.stack.placer.app.log_path is not None
    return [line for line in log_lines(stack.stack.placer.app.log_path)
            if line.get("order_id") == order_id]  # fmt: skip


def _placed_line(stack: RunningStack, order_id: str) -> dict[str, object] | None:
    placed = [line for line in _placer_lines(stack, order_id) if line["outcome"] == "placed"]
    return placed[0] if placed else None


def test_metrics_count_what_the_orders_did(tmp_path: Path) -> None:
    # The exchange refuses every call for the first orders (dead-lettered after two quick
    # retries), then accepts every call.
    components = fast_retry_components(tmp_path / "components")
    control = tmp_path / "exchange-control.json"
    control.write_text(json.dumps({"failure_rate": 1.0}))
    env = {"EXCHANGE_CONTROL_PATH": str(control), "EXCHANGE_LATENCY_SECONDS": "0.05"}
    env |= ONE_CALL_A_DELIVERY
    with running_stack(
        tmp_path / "stack", StateStoreKind.REDIS, components=components, app_env=env
    ) as stack:
        api, placer = stack.stack.api.metrics_url, stack.stack.placer.metrics_url
        for quantity in (1, 2, 3):
            assert stack.client.post("/orders", json=limit_order_body(quantity=quantity)).is_success
        wait_for(
            lambda: value(scrape(placer), "orders_dead_lettered_total") == 3,
            what="3 orders dead-lettered",
            timeout_seconds=60,
        )
        control.write_text(json.dumps({"failure_rate": 0.0}))
        for quantity in (4, 5, 6, 7, 8):
            order = market_order_body(quantity=quantity)
            assert stack.client.post("/orders", json=order).is_success
        assert stack.client.post("/orders", json={"type": "market"}).status_code == 422
        wait_for(
            lambda: value(scrape(placer), "orders_placed_total") == 5,
            what="5 orders placed",
            timeout_seconds=60,
        )
        api_samples, placer_samples = scrape(api), scrape(placer)
        dapr_samples = scrape(f"http://127.0.0.1:{stack.stack.api.ports.dapr_metrics}/")

    accepted = value(api_samples, "orders_accepted_total")
    placed = value(placer_samples, "orders_placed_total")
    dead_lettered = value(placer_samples, "orders_dead_lettered_total")
    assert (accepted, placed, dead_lettered) == (8, 5, 3)
    assert placed + dead_lettered == accepted
    post = {"method": "POST", "route": "/orders"}
    assert value(api_samples, "orders_api_requests_total", **post, status="201") == 8
    assert value(api_samples, "orders_api_requests_total", **post, status="422") == 1
    assert value(api_samples, "orders_api_request_duration_seconds_count", **post) == 9
    # Each dead-lettered order was tried three times, each attempt timed.
    calls = "orders_exchange_call_duration_seconds_count"
    assert value(placer_samples, calls, result="failed") == 9
    assert value(placer_samples, calls, result="accepted") == 5
    assert value(placer_samples, "orders_placement_attempts_total", outcome="exchange_failed") == 9
    assert value(placer_samples, "orders_placement_attempts_total", outcome="placed") == 5
    assert value(placer_samples, "orders_accept_to_placed_seconds_count") == 5
    assert value(placer_samples, "orders_accept_to_placed_seconds_sum") > 0
    assert value(placer_samples, "orders_in_flight") == 0
    # The sidecar's own metrics stay on.
    assert any(name.startswith("dapr_") for name, _ in dapr_samples)


def test_the_clients_trace_reaches_the_placer_log(healthy_stack: RunningStack) -> None:
    response = healthy_stack.client.post(
        "/orders", json=limit_order_body(), headers={"traceparent": CLIENT_TRACEPARENT}
    )
    assert response.status_code == 201
    assert response.headers["x-trace-id"] == CLIENT_TRACE_ID
    order_id = response.json()["id"]
    placed = wait_for(
        lambda: _placed_line(healthy_stack, order_id), what="order placed", timeout_seconds=30
    )
    assert placed["trace_id"] == CLIENT_TRACE_ID
    lines = _placer_lines(healthy_stack, order_id)
    assert [line["outcome"] for line in lines] == ["decided_place", "placed"]
    assert {line["trace_id"] for line in lines} == {CLIENT_TRACE_ID}


def test_a_new_trace_is_started_and_answered(healthy_stack: RunningStack) -> None:
    response = healthy_stack.client.post("/orders", json=market_order_body())
    trace_id = response.headers["x-trace-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id) and trace_id != CLIENT_TRACE_ID
    order_id = response.json()["id"]
    placed = wait_for(
        lambda: _placed_line(healthy_stack, order_id), what="order placed", timeout_seconds=30
    )
    assert placed["trace_id"] == trace_id
    assert placed["level"] == "INFO" and "time" in placed
    # The API's line of the same order: same trace, and no request body at info level.
    assert healthy_stack.stack.api.app.log_path is not None
    api_lines = [line for line in log_lines(healthy_stack.stack.api.app.log_path)
                 if line.get("order_id") == order_id]  # fmt: skip
    assert [line["trace_id"] for line in api_lines] == [trace_id]
    assert "DE000BASF111" not in json.dumps(api_lines)


def _traced_components(target: Path, collector: str) -> Path:
    """components/ with the sidecars exporting their spans over OTLP/HTTP to `collector`."""
    shutil.copytree(COMPONENTS_DIR, target)
    config_path = target / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["spec"]["tracing"]["otel"] = {
        "endpointAddress": collector, "isSecure": False, "protocol": "http"
    }  # fmt: skip
    config_path.write_text(yaml.safe_dump(config))
    return target


def test_one_trace_follows_an_order_to_the_exchange(tmp_path: Path) -> None:
    port = free_port()
    components = _traced_components(tmp_path / "components", f"127.0.0.1:{port}")
    env = {
        "EXCHANGE_FAILURE_RATE": "0",
        "EXCHANGE_LATENCY_SECONDS": "0.05",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_BSP_SCHEDULE_DELAY": "200",  # export within a fifth of a second
    }
    with (
        otlp_receiver(port) as receiver,
        running_stack(
            tmp_path / "stack", StateStoreKind.REDIS, components=components, app_env=env
        ) as stack,
    ):
        response = stack.client.post("/orders", json=limit_order_body())
        trace_id = response.headers["x-trace-id"]

        def chain_to_the_root() -> list[ReceivedSpan] | None:
            """The exchange call's span and its ancestors, once all of them arrived."""
            spans = {span.span_id: span for span in receiver.spans(trace_id)}
            chain = [span for span in spans.values() if span.name == "exchange place_order"]
            while chain and chain[-1].parent_span_id:
                if chain[-1].parent_span_id not in spans:
                    return None
                chain.append(spans[chain[-1].parent_span_id])
            return chain or None

        chain = wait_for(chain_to_the_root, what="the order's trace exported", timeout_seconds=30)
        api_spans = [span for span in receiver.spans(trace_id) if span.service == "order-api"]

    # One unbroken chain from the API's span for POST /orders to the exchange call, through
    # the API's sidecar (the state transaction whose outbox published the order) and the
    # placer's delivery.
    steps = [(span.service, span.name) for span in chain]
    assert steps[0] == ("order-placer", "exchange place_order")
    assert steps[1] == ("order-placer", "deliver orders")
    assert ("order-api", "/v1.0/state/orderstore/transaction") in steps
    assert steps[-1] == ("order-api", "POST /orders")
    assert response.json()["id"] in {span.attributes.get("order.id") for span in api_spans}
