"""Log lines: JSON with the current trace, and the fields given with `extra`."""

import io
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from core.config import LogFormat
from core.logs import configure_logging


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    configure_logging("INFO", LogFormat.JSON)
    stream = io.StringIO()
    (handler,) = logging.getLogger().handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    yield stream
    logging.getLogger().handlers.clear()


def test_json_lines_carry_the_trace_and_the_extra_fields(captured: io.StringIO) -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("delivery") as span:
        logging.getLogger("placer").info("order %s: placed", "o-1", extra={"order_id": "o-1"})
    line = json.loads(captured.getvalue())
    assert line["message"] == "order o-1: placed"
    assert line["order_id"] == "o-1"
    assert line["level"] == "INFO" and line["logger"] == "placer"
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert line["time"].endswith("+00:00")


def test_lines_outside_a_trace_have_no_trace_fields(captured: io.StringIO) -> None:
    logging.getLogger("app").warning("no request here")
    line = json.loads(captured.getvalue())
    assert "trace_id" not in line and line["level"] == "WARNING"


def test_text_lines_for_a_terminal() -> None:
    configure_logging("INFO", LogFormat.TEXT)
    stream = io.StringIO()
    (handler,) = logging.getLogger().handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    logging.getLogger("app").info("hello")
    logging.getLogger().handlers.clear()
    assert stream.getvalue().rstrip().endswith("INFO app: hello [trace -]")
