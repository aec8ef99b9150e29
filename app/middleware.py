"""The API's metrics and its span per request: an ASGI middleware around everything else."""

import time

from opentelemetry import trace
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.tracing import context_from, trace_id_of

TRACE_ID_HEADER = b"x-trace-id"
# Requests that matched no route share one label, so that random paths cannot grow the series.
UNMATCHED_ROUTE = "unmatched"

REQUESTS = Counter(
    "orders_api_requests",
    "HTTP requests answered, by route and status",
    ["method", "route", "status"],
)
REQUEST_SECONDS = Histogram(
    "orders_api_request_duration_seconds",
    "Time to answer an HTTP request, by route",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ORDERS_ACCEPTED = Counter(
    "orders_accepted", "Orders answered 201: stored, their placement guaranteed"
)

tracer = trace.get_tracer(__name__)


class TelemetryMiddleware:
    """Continues the client's trace (or starts one), answers its id in X-Trace-Id, and counts
    and times the request under its route's template (/orders/{order_id}, not the id)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
        }
        method = scope["method"]
        started = time.perf_counter()
        status = 500  # unless the app answers: an error that escaped every handler
        with tracer.start_as_current_span(
            method, context=context_from(headers), kind=trace.SpanKind.SERVER
        ) as span:
            trace_id = trace_id_of(span).encode()

            async def send_with_trace_id(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    message["headers"] = [*message.get("headers", []), (TRACE_ID_HEADER, trace_id)]
                await send(message)

            try:
                await self.app(scope, receive, send_with_trace_id)
            finally:
                route = _route_of(scope)
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(trace.StatusCode.ERROR)
                REQUESTS.labels(method, route, str(status)).inc()
                REQUEST_SECONDS.labels(method, route).observe(time.perf_counter() - started)


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    return str(getattr(route, "path", UNMATCHED_ROUTE))
