"""Traces: OpenTelemetry, W3C trace context. Each app continues the trace it is called in (a
client's `traceparent`, or the one its sidecar delivers an order with) and passes it on to
its sidecar, so that one order keeps one trace from POST /orders to the exchange call."""

from collections.abc import Mapping, MutableMapping

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from core.config import settings

OTLP_TRACES_PATH = "/v1/traces"
EXPORT_TIMEOUT_SECONDS = 5


def configure_tracing(service_name: str) -> TracerProvider:
    """Installs the app's tracer provider; it exports over OTLP/HTTP when an endpoint is set.
    Shut it down at exit to flush the last spans."""
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    if endpoint := settings.OTEL_EXPORTER_OTLP_ENDPOINT:
        exporter = OTLPSpanExporter(
            endpoint=endpoint.rstrip("/") + OTLP_TRACES_PATH, timeout=EXPORT_TIMEOUT_SECONDS
        )
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider


def trace_id_of(span: trace.Span) -> str:
    """The span's trace id as 32 hex digits, as W3C `traceparent` and the logs write it."""
    return format(span.get_span_context().trace_id, "032x")


def trace_id_in(carrier: Mapping[str, str]) -> str | None:
    """The trace id of the `traceparent` in `carrier`; None when there is no valid one."""
    span_context = trace.get_current_span(context_from(carrier)).get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None


def context_from(carrier: Mapping[str, str]) -> Context:
    """The trace context a caller sent (`traceparent`, `tracestate`); empty when none."""
    return propagate.extract(carrier)


def inject_into(headers: MutableMapping[str, str]) -> None:
    """Adds the current span's `traceparent` (and `tracestate`) to outgoing headers."""
    propagate.inject(headers)


def exception_attributes(error: BaseException) -> dict[str, str]:
    """An exception as a span event's attributes (OpenTelemetry's semantic conventions), without
    the formatted traceback that a span's `record_exception` adds at some cost."""
    return {"exception.type": type(error).__qualname__, "exception.message": str(error)}
