"""vegeta's results as the benchmark reads them, and the percentiles it reports."""

import base64
import json

import pytest

from bench import load, vegeta
from bench.stats import percentile


def csv_row(sent_ns: int, code: int, latency_ns: int, body: bytes = b"", error: str = "") -> str:
    encoded = base64.b64encode(body).decode()
    return f'{sent_ns},{code},{latency_ns},120,300,"{error}",{encoded},,0,POST,http://x/orders,'


def test_results_are_read_from_vegetas_csv_in_the_order_sent() -> None:
    order = json.dumps({"id": "o1", "created_at": "2026-11-30T18:00:00+00:00"}).encode()
    lines = [
        csv_row(1_796_000_000_500_000_000, 0, 10_000_000_000, error="timeout, after 10s"),
        csv_row(1_796_000_000_000_000_000, 201, 2_500_000, order),
    ]
    first, second = vegeta.parse_csv(lines)
    assert (first.code, first.latency_ms, json.loads(first.body)["id"]) == (201, 2.5, "o1")
    assert first.ok and first.answered_at == pytest.approx(1_796_000_000.0025)
    assert first.url == "http://x/orders"
    assert (second.code, second.error, second.ok) == (0, "timeout, after 10s", False)


def test_latency_counts_every_request_and_errors_are_those_not_2xx() -> None:
    hits = [vegeta.Hit(float(i), float(i + 1), 201, "", b"") for i in range(999)]
    hits.append(vegeta.Hit(999.0, 10_000.0, 0, "timeout", b""))
    figures = vegeta.latency(hits)
    assert figures == vegeta.Latency(
        requests=1000, p50_ms=500.0, p99_ms=990.0, p999_ms=999.0, errors=1
    )


def test_target_posts_the_benchmarks_order() -> None:
    target = json.loads(vegeta.target_line("http://127.0.0.1:8000/orders"))
    assert target["method"] == "POST" and target["url"].endswith("/orders")
    assert json.loads(base64.b64decode(target["body"])) == load.order_body()
    assert target["header"]["Content-Type"] == ["application/json"]


def test_target_posts_the_order_given_to_the_url_given() -> None:
    order = {"type": "market", "quantity": 7}
    target = json.loads(vegeta.target_line("http://127.0.0.1:8001/orders#7", order))
    assert target["url"] == "http://127.0.0.1:8001/orders#7"
    assert json.loads(base64.b64decode(target["body"])) == order


@pytest.mark.parametrize(
    ("q", "expected"), [(50, 50), (99, 99), (99.9, 100), (100, 100), (1, 1), (0.1, 1)]
)
def test_percentile_is_the_nearest_rank(q: float, expected: int) -> None:
    assert percentile(range(100, 0, -1), q) == expected


def test_percentile_of_a_thousand_values_is_not_thrown_by_floating_point() -> None:
    values = list(range(1, 1001))
    assert percentile(values, 99.9) == 999
    assert percentile(values, 99) == 990


def test_percentile_needs_values_and_a_rank() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="not in"):
        percentile([1.0], 0)
