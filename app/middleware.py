"""The API's ASGI middlewares, outermost first as app/main.py adds them: the request's span and
metrics (TelemetryMiddleware), a fixed 500 for any failure (InternalErrorMiddleware), and 413 for
a body over the limit before it is read (BodySizeLimitMiddleware)."""

import logging
import time

from opentelemetry import trace
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.acceptance import OrderNotAcceptedError
from app.errors import ErrorMessage, failure_message
from app.metrics import REQUEST_SECONDS, REQUESTS
from core.sidecar import SidecarError
from core.tracing import context_from, trace_id_of

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

TRACE_ID_HEADER = b"x-trace-id"
# Requests that matched no route share one label, so that random paths cannot grow the series.
UNMATCHED_ROUTE = "unmatched"
# Failures of the store or the sidecar, already explained where they happened: one line each,
# not a traceback (an outage brings hundreds per second).
EXPECTED_FAILURES = (OrderNotAcceptedError, SidecarError)


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


class InternalErrorMiddleware:
    """Turns any exception into a logged 500 with a fixed body.

    A pure ASGI middleware rather than an exception handler for `Exception`: Starlette
    re-raises after such a handler, and the server then drops the connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response_started = False

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as error:
            if isinstance(error, EXPECTED_FAILURES):
                logger.warning("%s %s failed: %r", scope["method"], scope["path"], error)
            else:
                logger.exception("%s %s failed: %r", scope["method"], scope["path"], error)
            if response_started:
                raise
            response = JSONResponse(
                status_code=500, content=ErrorMessage(message=failure_message(scope)).model_dump()
            )
            await response(scope, receive, send)


class BodyTooLargeError(Exception):
    pass


class BodySizeLimitMiddleware:
    """413 for a body over `max_bytes`: at once when Content-Length says so, otherwise (a
    chunked body) as soon as the bytes received pass the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return

        received = 0
        response_started = False
        refused = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                # Answer now: the framework turns errors while reading into its own 400.
                if not response_started and not refused:
                    refused = True
                    await self._refuse(scope, receive, send)
                raise BodyTooLargeError
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if refused:
                return  # the 413 has been sent; drop the app's own answer
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLargeError:
            if not refused:
                raise

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            status_code=413,
            content={"detail": f"Request body is larger than {self.max_bytes} bytes"},
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)
