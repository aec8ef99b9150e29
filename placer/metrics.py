"""The placer's metrics (served by `python -m placer` on PLACER_METRICS_PORT)."""

from enum import StrEnum

from prometheus_client import Counter, Gauge, Histogram


class Outcome(StrEnum):
    """How one delivery of an order ended."""

    PLACED = "placed"
    EXCHANGE_FAILED = "exchange_failed"  # retried by the sidecar, then dead-lettered
    STORE_FAILED = "store_failed"  # the state store did not answer: retried
    REJECTED = "rejected"  # its client was answered 500: never placed
    ALREADY_DONE = "already_done"  # a repeated delivery of an order placed or rejected
    NOT_COMMITTED = "not_committed"  # an outbox message whose commit failed
    INVALID = "invalid"  # not an order, or not in the store: dropped
    # Held while the exchange was down until its delivery's deadline: retried by the sidecar.
    EXCHANGE_DOWN = "exchange_down"
    EXPIRED = "expired"  # not placed within the maximum order age: dead-lettered, never sent


ATTEMPTS = Counter(
    "orders_placement_attempts", "Deliveries of orders to the placer, by outcome", ["outcome"]
)
EXCHANGE_SECONDS = Histogram(
    "orders_exchange_call_duration_seconds",
    "Time the exchange took to accept or refuse an order",
    ["result"],
    buckets=(0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 10, 30),
)
PLACED = Counter("orders_placed", "Orders the exchange accepted")
DEAD_LETTERED = Counter(
    "orders_dead_lettered", "Orders given up after every retry; re-drive them (./run redrive)"
)
IN_FLIGHT = Gauge("orders_in_flight", "Deliveries of orders the placer is working on")
ACCEPT_TO_PLACED_SECONDS = Histogram(
    "orders_accept_to_placed_seconds",
    "From an order's 201 (its created_at) to the exchange's acceptance",
    buckets=(0.5, 1, 1.5, 2, 3, 5, 10, 30, 60, 300, 1800),
)

# The trimming of the topics' Redis streams (placer/stream_trim.py); every placer reports them.
STREAM_TRIM_ROUNDS = Counter(
    "orders_stream_trim_rounds", "Rounds of stream trimming, by outcome (done, failed)", ["outcome"]
)
STREAM_TRIMMED = Counter(
    "orders_stream_trimmed_entries",
    "Stream entries trimmed: read and acknowledged by every consumer group",
    ["stream"],
)
STREAM_ENTRIES = Gauge(
    "orders_stream_entries",
    "Entries in the stream after the last trim: from the oldest one a consumer group still needs",
    ["stream"],
)
# Orders stranded by a stopping sidecar, handed back for redelivery (placer/handback.py).
HANDBACK_ROUNDS = Counter(
    "orders_stranded_check_rounds",
    "Looks for stranded deliveries, by outcome (done, failed, paused: the exchange is down)",
    ["outcome"],
)
HANDED_BACK = Counter(
    "orders_stranded_handed_back",
    "Deliveries a stopping sidecar read and never delivered, handed back for redelivery",
)
# A down exchange (placer/holding.py): the breaker's state, deliveries held until it is back.
EXCHANGE_BREAKER_STATE = Gauge(
    "orders_exchange_breaker_state",
    "1 for the state the placer's exchange breaker is in (closed, open, half_open), else 0",
    ["state"],
)
EXCHANGE_BREAKER_TRANSITIONS = Counter(
    "orders_exchange_breaker_transitions", "Changes of the exchange breaker's state", ["state"]
)
HELD = Gauge("orders_held", "Deliveries held until the exchange is back (no retry spent)")
REPEATED_DELIVERIES = Counter(
    "orders_repeated_deliveries",
    "Deliveries of an order this placer was still working on (a redelivery of a held one): "
    "each waits for the first to end",
)
