"""The stock exchange stand-in: a simulation that the placer calls in place of a real
exchange (this service connects to none).

`place_order` behaves like the exchange of the challenge: it is slow (EXCHANGE_LATENCY_SECONDS,
0.5 s by default) and fails some calls (EXCHANGE_FAILURE_RATE, 10% by default). Like a real
exchange it takes a client order id and ignores an id it has already accepted, so a repeated
call never places an order twice. The stand-in keeps the ids it accepted in a ledger (SQLite,
shared by every placer process on the machine), which tests read to check that each order
reached it exactly once.

The same code runs in-process (the placer calls `place_order`) or as a service of its own that
every placer of a cluster shares (`python -m exchange`, which calls `submit`; the placer reaches
it with placer/exchange_client.py when EXCHANGE_URL is set).
"""

import json
import random
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from core.config import settings
from core.domain import Order

LEDGER_TIMEOUT_SECONDS = 10.0


class OrderPlacementError(Exception):
    """The exchange did not accept the order; the call may be repeated."""


class OrderRefusedError(OrderPlacementError):
    """The exchange answered, and refused this order: the order's own failure, not the
    exchange's (placer/breaker.py counts it as a sign that the exchange is up)."""


class Acceptance(BaseModel):
    """One client order id in the ledger: placed once, however often it was sent."""

    client_order_id: str
    instrument: str
    accepted_at: float  # Unix seconds, of the first acceptance
    submissions: int  # accepted calls that carried the id; a repeat is answered as the first


class ExchangeLedger:
    """The client order ids the stand-in accepted: what a test compares with the orders."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._connections = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(path, timeout=LEDGER_TIMEOUT_SECONDS)) as db, db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS accepted ("
                " client_order_id TEXT PRIMARY KEY,"
                " instrument TEXT NOT NULL,"
                " submissions INTEGER NOT NULL DEFAULT 1,"
                " accepted_at REAL NOT NULL)"
            )

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, kept open: at hundreds of calls a second, opening one per
        call cost more than the write. Commits are not synced to disk one by one (WAL with
        synchronous=NORMAL: a crash of the process loses nothing, one of the machine may lose
        the last ones); a sync per commit made the ledger the placer's bottleneck."""
        db: sqlite3.Connection | None = getattr(self._connections, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=LEDGER_TIMEOUT_SECONDS)
            db.execute("PRAGMA synchronous=NORMAL")
            self._connections.db = db
        return db

    def accept(self, order: Order) -> Acceptance:
        """Records the order, or one more submission of a client order id already accepted."""
        with self._connection() as db:  # one transaction
            cursor = db.execute(
                "INSERT INTO accepted (client_order_id, instrument, accepted_at) VALUES (?, ?, ?)"
                " ON CONFLICT (client_order_id) DO UPDATE SET submissions = submissions + 1"
                " RETURNING client_order_id, instrument, accepted_at, submissions",
                (order.id, order.instrument, time.time()),
            )
            row = cursor.fetchone()
        return _acceptance(row)

    def acceptance(self, client_order_id: str) -> Acceptance | None:
        """The client order id as the ledger holds it; None when it was never accepted."""
        rows = self._rows(
            "SELECT client_order_id, instrument, accepted_at, submissions FROM accepted"
            " WHERE client_order_id = ?",
            client_order_id,
        )
        return _acceptance(rows[0]) if rows else None

    def acceptance_times(self) -> dict[str, float]:
        """Every accepted client order id, with when it was first accepted (Unix seconds)."""
        rows = self._rows("SELECT client_order_id, accepted_at FROM accepted")
        return {str(order_id): float(at) for order_id, at in rows}

    def submissions(self) -> dict[str, int]:
        """Every accepted client order id, with how many times it was sent."""
        rows = self._rows("SELECT client_order_id, submissions FROM accepted")
        return {client_order_id: count for client_order_id, count in rows}

    def _rows(self, query: str, *parameters: str) -> list[Any]:
        return self._connection().execute(query, parameters).fetchall()


def _acceptance(row: tuple[str, str, float, int]) -> Acceptance:
    client_order_id, instrument, accepted_at, submissions = row
    return Acceptance(
        client_order_id=client_order_id,
        instrument=instrument,
        accepted_at=accepted_at,
        submissions=submissions,
    )


_ledger: ExchangeLedger | None = None


def ledger() -> ExchangeLedger:
    global _ledger  # noqa: PLW0603 - one ledger per process, opened on first use
    if _ledger is None:
        _ledger = ExchangeLedger(settings.EXCHANGE_LEDGER_PATH)
    return _ledger


class StandInBehaviour(BaseModel):
    """How slow the stand-in is, and how often it fails."""

    latency_seconds: float = Field(ge=0)
    failure_rate: float = Field(ge=0, le=1)
    # A wait after the order is accepted and before the answer (control file only): past the
    # caller's timeout, the answer is lost while the order stands.
    answer_delay_seconds: float = Field(default=0, ge=0)


def stand_in_behaviour() -> StandInBehaviour:
    """The configured latency and failure rate, or those of the control file when present."""
    configured = StandInBehaviour(
        latency_seconds=settings.EXCHANGE_LATENCY_SECONDS,
        failure_rate=settings.EXCHANGE_FAILURE_RATE,
    )
    control = settings.EXCHANGE_CONTROL_PATH
    if control is None or not control.exists():
        return configured
    overrides = json.loads(control.read_text() or "{}")
    return StandInBehaviour.model_validate({**configured.model_dump(), **overrides})


def submit(order: Order) -> Acceptance:
    """One call to the stand-in, with the order's id as the client order id: blocks for the
    configured latency; raises OrderPlacementError for the configured share of calls; else
    answers how the ledger holds the id (the first acceptance, for a repeat)."""
    now = stand_in_behaviour()
    time.sleep(now.latency_seconds)
    if random.random() < now.failure_rate:  # noqa: S311 - simulation, not crypto
        raise OrderPlacementError(f"the exchange stand-in failed order {order.id}")
    acceptance = ledger().accept(order)
    time.sleep(now.answer_delay_seconds)
    return acceptance


def place_order(order: Order) -> None:
    """Places `order` on the in-process stand-in (see `submit`)."""
    submit(order)
