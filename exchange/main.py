"""The stand-in's HTTP API: placing an order (idempotent by client order id), and what tests
read back to check that each order was placed exactly once.

The handlers are plain functions: FastAPI runs them in worker threads, where the stand-in's
code (placer/stock_exchange.py, the same as in-process) sleeps out its latency and writes its
SQLite ledger. One process, one ledger: see docs/deployment.md for why a single replica.
"""

import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI, HTTPException, Response, status
from pydantic import BaseModel

from core.domain import Order
from placer.stock_exchange import Acceptance, OrderPlacementError, ledger, submit

logger = logging.getLogger(__name__)

# Calls in flight at once, each in a thread for the stand-in's latency: above what every
# placer of a cluster sends (PLACER_CONCURRENCY, 250, per pod, up to the chart's 10 pods), so
# none waits for a thread. Threads start as calls need them.
MAX_CALLS_IN_FLIGHT = 2500


class Health(BaseModel):
    status: str


class Placements(BaseModel):
    """The whole ledger, for exactly-once checks."""

    orders: int  # client order ids accepted: orders placed
    submissions: int  # accepted calls, repeats included
    duplicates: dict[str, int]  # ids sent more than once (each placed once), with their count
    accepted: dict[str, int]  # every accepted id, with its count


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    anyio.to_thread.current_default_thread_limiter().total_tokens = MAX_CALLS_IN_FLIGHT
    await anyio.to_thread.run_sync(ledger)  # a ledger that cannot be opened fails the start
    yield


app = FastAPI(
    title="Exchange stand-in",
    summary="Places orders by client order id, slowly and with failures, like an exchange.",
    version="0.1.0",
    lifespan=lifespan,
)


@app.post(
    "/orders",
    status_code=status.HTTP_201_CREATED,
    responses={
        status.HTTP_200_OK: {"model": Acceptance, "description": "A repeat of an accepted id"},
        status.HTTP_503_SERVICE_UNAVAILABLE: {"description": "The call failed; repeat it"},
    },
)
def place(order: Order, response: Response) -> Acceptance:
    """Places the order with its id as the client order id: 201 the first time; 200 with the
    first acceptance for an id already accepted (placed once, counted as a submission)."""
    fields = {"order_id": order.id}
    try:
        acceptance = submit(order)
    except OrderPlacementError as error:
        logger.info("order %s: failed, as the stand-in does", order.id, extra=fields)
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(error)) from error
    if acceptance.submissions > 1:
        response.status_code = status.HTTP_200_OK
        logger.info(
            "order %s: already accepted, submission %d", order.id, acceptance.submissions,
            extra=fields,
        )  # fmt: skip
    else:
        logger.info("order %s: accepted", order.id, extra=fields)
    return acceptance


@app.get("/orders/{client_order_id}", responses={status.HTTP_404_NOT_FOUND: {}})
def acceptance_of(client_order_id: str) -> Acceptance:
    """Whether the id was accepted, when first, and how many accepted calls carried it."""
    acceptance = ledger().acceptance(client_order_id)
    if acceptance is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "never accepted")
    return acceptance


@app.get("/placements")
def placements() -> Placements:
    accepted = ledger().submissions()
    return Placements(
        orders=len(accepted),
        submissions=sum(accepted.values()),
        duplicates={order_id: count for order_id, count in accepted.items() if count > 1},
        accepted=accepted,
    )


@app.get("/health/live")
async def live() -> Health:
    """The process serves requests."""
    return Health(status="ok")


@app.get("/health/ready", responses={status.HTTP_503_SERVICE_UNAVAILABLE: {"model": Health}})
def ready(response: Response) -> Health:
    """Ready while the ledger can be read."""
    try:
        ledger().acceptance("")
    except sqlite3.Error as error:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return Health(status=f"ledger unreadable: {error}")
    return Health(status="ok")
