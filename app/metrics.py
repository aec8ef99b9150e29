"""The API's metrics (served by `python -m app` on API_METRICS_PORT); the placer's are in
placer/metrics.py."""

from prometheus_client import Counter, Histogram

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
