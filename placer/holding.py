"""Holds the placer's deliveries while the exchange is down, so that orders wait for it instead
of spending their retries (docs/design.md, "A down exchange holds orders").

The breaker (placer/breaker.py) judges from the exchange calls whether the exchange is down as a
whole. While it is, a delivery is not answered: it waits here. The sidecar, whose `concurrency`
workers are then all waiting, reads no further messages, so the other orders wait in the stream.
One held delivery at a time is the probe that calls the exchange; once the exchange answers it,
every held delivery goes on.

A held delivery ends:
- when the exchange is back: it is placed;
- when its order reaches the maximum order age: it is dead-lettered and never sent;
- shortly before its delivery's deadline (the resiliency policy's placementAttempt, which the
  sidecar sends as the gRPC deadline) with a RETRY: the shipped policy's timeout is above the
  maximum age, so that this happens only when it is set otherwise.

A hold outlives the pub/sub's processingTimeout: Redis then hands the message out again while the
first delivery is still held. A second delivery of an order this placer is working on waits for
the first (`one_at_a_time`), then finds it placed; one that reaches another placer reads the order
again after its hold; and the exchange's client order id covers the rest.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from core.config import settings
from core.domain import Order
from placer import metrics
from placer.breaker import BreakerState, CallResult, ExchangeBreaker, Permit
from placer.stock_exchange import OrderRefusedError

logger = logging.getLogger(__name__)

# When the delivery being handled ends (time.monotonic()), as its gRPC deadline says; None: never.
DELIVERY_DEADLINE: ContextVar[float | None] = ContextVar("delivery_deadline", default=None)
# A hold ends this long before the delivery's deadline, so that its answer reaches the sidecar.
DEADLINE_MARGIN_SECONDS = 1.0


@contextlib.contextmanager
def delivery_deadline(seconds_left: float | None) -> Iterator[None]:
    """Marks the delivery handled in this context as ending `seconds_left` from now."""
    deadline = None if seconds_left is None else time.monotonic() + seconds_left
    token = DELIVERY_DEADLINE.set(deadline)
    try:
        yield
    finally:
        DELIVERY_DEADLINE.reset(token)


class Verdict(StrEnum):
    CALL = "call"  # the exchange is up: call it
    PROBE = "probe"  # it is down: call it, as the probe that tells whether it is back
    TOO_OLD = "too_old"  # past the maximum order age: never send it
    OUT_OF_TIME = "out_of_time"  # the delivery's deadline is near and the exchange still down


@dataclass(frozen=True)
class Admission:
    verdict: Verdict
    held: bool  # the delivery waited for the exchange first


def call_result(error: BaseException | None) -> CallResult:
    """What an exchange call's outcome says about the exchange."""
    if error is None:
        return CallResult.ACCEPTED
    if isinstance(error, OrderRefusedError):
        return CallResult.REFUSED
    return CallResult.FAILED


@dataclass
class _Turns:
    lock: asyncio.Lock
    users: int = 0


class ExchangeGate:
    """The placer's one breaker, and the deliveries waiting for it."""

    def __init__(
        self,
        breaker: ExchangeBreaker,
        *,
        max_order_age_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._breaker = breaker
        self._max_age = timedelta(seconds=max_order_age_seconds)
        self._clock = clock
        self._changed = asyncio.Event()  # set (and replaced) whenever the state changes
        self._turns: dict[str, _Turns] = {}
        self.age_reason = f"not placed within the maximum order age ({max_order_age_seconds:g} s)"
        self._show(breaker.state)

    @classmethod
    def from_settings(cls) -> "ExchangeGate":
        breaker = ExchangeBreaker(
            settings.PLACER_BREAKER_FAILURES, settings.PLACER_BREAKER_PROBE_SECONDS
        )
        return cls(breaker, max_order_age_seconds=settings.PLACER_MAX_ORDER_AGE_SECONDS)

    @property
    def exchange_down(self) -> bool:
        return self._breaker.state is not BreakerState.CLOSED

    def too_old(self, order: Order) -> bool:
        return datetime.now(UTC) - order.created_at >= self._max_age

    @contextlib.asynccontextmanager
    async def one_at_a_time(self, order_id: str) -> AsyncIterator[None]:
        """One delivery of an order at a time in this placer: a redelivery of a held message
        waits for the first delivery to end."""
        turns = self._turns.setdefault(order_id, _Turns(asyncio.Lock()))
        if turns.lock.locked():
            metrics.REPEATED_DELIVERIES.inc()
        turns.users += 1
        try:
            async with turns.lock:
                yield
        finally:
            turns.users -= 1
            if not turns.users:
                del self._turns[order_id]

    async def admit(self, order: Order) -> Admission:
        """Waits until the order may go to the exchange, or must not."""
        held = False
        while True:
            if self.too_old(order):
                return Admission(Verdict.TOO_OLD, held)
            now = self._clock()
            left = self._time_left(now)
            if self.exchange_down and left is not None and left <= 0:
                return Admission(Verdict.OUT_OF_TIME, held)
            before = self._breaker.state
            permit = self._breaker.permit(now)
            if permit is Permit.CALL:
                return Admission(Verdict.CALL, held)
            if permit is Permit.PROBE:
                self._changed_from(before)
                logger.info("probing the exchange with order %s", order.id, extra=_fields(order.id))
                return Admission(Verdict.PROBE, held)
            held = True
            await self._wait(self._wait_seconds(order, now, left))

    def record(
        self, admission: Admission, error: BaseException | None, order_id: str
    ) -> CallResult:
        """Feeds the breaker with one call's outcome (`error` None: the exchange accepted)."""
        result = call_result(error)
        before, opened_at = self._breaker.state, self._breaker.opened_at
        probe = admission.verdict is Verdict.PROBE
        self._breaker.record(result, self._clock(), probe=probe)
        state = self._breaker.state
        if state is before:
            return result
        fields = _fields(order_id, state)
        if state is BreakerState.OPEN and before is BreakerState.CLOSED:
            logger.warning(
                "the exchange is down: %d calls in a row failed, the last for order %s (%r); "
                "holding deliveries, probing every %g s", self._breaker.failures, order_id, error,
                self._breaker.probe_interval_seconds, extra=fields,
            )  # fmt: skip
        elif state is BreakerState.OPEN:
            logger.info("the exchange is still down: %r", error, extra=fields)
        else:
            down = self._clock() - (opened_at or self._clock())
            logger.warning("the exchange is back after %.1f s down", down, extra=fields)
        self._changed_from(before)
        return result

    def abandon(self, admission: Admission) -> None:
        """The admitted delivery made no call (a probe then lets the next one go)."""
        if admission.verdict is Verdict.PROBE:
            before = self._breaker.state
            self._breaker.abandon_probe(self._clock())
            self._changed_from(before)

    def _time_left(self, now: float) -> float | None:
        deadline = DELIVERY_DEADLINE.get()
        return None if deadline is None else deadline - DEADLINE_MARGIN_SECONDS - now

    def _wait_seconds(self, order: Order, now: float, left: float | None) -> float:
        """How long to wait at most before looking again: until the next probe, the delivery's
        deadline or the order's age limit, whichever is first."""
        age_left = (order.created_at + self._max_age - datetime.now(UTC)).total_seconds()
        bounds = [age_left, left, self._breaker.seconds_to_probe(now)]
        return max(0.0, min(bound for bound in bounds if bound is not None))

    async def _wait(self, seconds: float) -> None:
        changed = self._changed
        metrics.HELD.inc()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), seconds)
        finally:
            metrics.HELD.dec()

    def _changed_from(self, before: BreakerState) -> None:
        state = self._breaker.state
        if state is before:
            return
        metrics.EXCHANGE_BREAKER_TRANSITIONS.labels(state.value).inc()
        self._show(state)
        self._changed.set()  # wakes every held delivery to look again
        self._changed = asyncio.Event()

    @staticmethod
    def _show(state: BreakerState) -> None:
        for each in BreakerState:
            metrics.EXCHANGE_BREAKER_STATE.labels(each.value).set(1 if each is state else 0)


def _fields(order_id: str, state: BreakerState | None = None) -> dict[str, str]:
    fields = {"order_id": order_id}
    if state is not None:
        fields["breaker"] = state.value
    return fields
