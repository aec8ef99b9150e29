"""Log set-up shared by both apps: JSON lines (or plain text), each with the trace and span of
the request or delivery it belongs to."""

import logging

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from core.config import LogFormat
from core.tracing import trace_id_of

JSON_FIELDS = ["levelname", "name", "message"]
JSON_NAMES = {"levelname": "level", "name": "logger"}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s [trace %(trace_id)s]"


class TraceContextFilter(logging.Filter):
    """Adds `trace_id` and `span_id` of the current span, when there is one."""

    def filter(self, record: logging.LogRecord) -> bool:
        span = trace.get_current_span()
        if span.get_span_context().is_valid:
            record.trace_id = trace_id_of(span)
            record.span_id = format(span.get_span_context().span_id, "016x")
        # uvicorn's copy of its message with terminal colours.
        record.__dict__.pop("color_message", None)
        return True


def configure_logging(level: str, log_format: LogFormat = LogFormat.JSON) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(TraceContextFilter())
    if log_format is LogFormat.JSON:
        # Fields given with `extra=` (order_id, outcome) come out as keys of their own.
        # "time": ISO 8601, UTC.
        formatter = JsonFormatter(JSON_FIELDS, rename_fields=JSON_NAMES, timestamp="time")
        handler.setFormatter(formatter)
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT, defaults={"trace_id": "-"}))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # uvicorn's own lines go through the same handler.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
