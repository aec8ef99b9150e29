"""What the placer does with one delivery of an order, and with a dead-lettered one.

Each function returns the answer for the sidecar: SUCCESS (done), RETRY (the sidecar retries
under the resiliency policy, then dead-letters) or DROP (never retry; the sidecar dead-letters).
"""

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import anyio
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from pydantic import ValidationError

from core.domain import Decision, Order, OrderEvent, OrderEventKind, OrderStatus
from core.repository import OrderRepository
from core.sidecar import SidecarError
from core.signing import OrderSigner
from core.tracing import exception_attributes
from placer import metrics
from placer.breaker import CallResult
from placer.holding import ExchangeGate, Verdict
from placer.metrics import Outcome

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

DEAD_LETTER_REASON = "placement retries exhausted"
# Logged when the exchange accepted an order but its status could not be saved: the retry
# calls the exchange again, which answers it as a repeat of the client order id.
STATUS_NOT_SAVED = "placed, but its status was not saved"
# How long an unclaimed order older than the API's deadline waits before the placer claims it:
# its client may have got a 500 while the store was down, and the API's void, retried every
# quarter second, lands within this once the store is back (as the placer itself just saw).
VOID_GRACE_SECONDS = 2.0

ExchangeCall = Callable[[Order], None]


class Delivery(StrEnum):
    SUCCESS = "SUCCESS"
    RETRY = "RETRY"
    DROP = "DROP"


def order_from_event(event: dict[str, object]) -> Order | None:
    """The order carried by a CloudEvent, or None for a message that is not an order."""
    try:
        return Order.model_validate(event.get("data"))
    except ValidationError as error:
        logger.error("event %s carries no valid order: %s", event.get("id"), error)
        return None


LOG_LEVELS = {
    Outcome.PLACED: logging.INFO,
    Outcome.ALREADY_DONE: logging.INFO,
    Outcome.NOT_COMMITTED: logging.INFO,
    Outcome.EXCHANGE_FAILED: logging.WARNING,
    Outcome.STORE_FAILED: logging.WARNING,
    Outcome.REJECTED: logging.WARNING,
    Outcome.INVALID: logging.ERROR,
    Outcome.EXCHANGE_DOWN: logging.WARNING,
    Outcome.EXPIRED: logging.ERROR,
}


def outcome(order_id: str, result: Outcome, answer: Delivery, message: str) -> Delivery:
    """Counts and logs how a delivery ended (one line with the order id and outcome); returns
    the answer for the sidecar."""
    metrics.ATTEMPTS.labels(result.value).inc()
    trace.get_current_span().set_attribute("placement.outcome", result.value)
    fields = {"order_id": order_id, "outcome": result.value, "delivery": answer.value}
    logger.log(LOG_LEVELS[result], "order %s: %s", order_id, message, extra=fields)
    return answer


class Placer:
    def __init__(
        self,
        orders: OrderRepository,
        place_order: ExchangeCall,
        concurrency: int,
        *,
        answer_deadline_seconds: float,
        void_grace_seconds: float = VOID_GRACE_SECONDS,
        gate: ExchangeGate | None = None,
        retries_at_once: int = 0,
        signer: OrderSigner | None = None,
    ) -> None:
        self._orders = orders
        self._place_order = place_order
        # An order older than this may have been answered 500: the API's ORDER_TIMEOUT_SECONDS.
        self._answer_deadline = timedelta(seconds=answer_deadline_seconds)
        self._void_grace_seconds = void_grace_seconds
        # The exchange client blocks: run it in threads, at most `concurrency` at once.
        self._exchange_slots = anyio.CapacityLimiter(concurrency)
        # Holds deliveries while the exchange is down (placer/holding.py).
        self._gate = gate if gate is not None else ExchangeGate.from_settings()
        # Failed calls repeated within the delivery before it is answered RETRY.
        self._retries_at_once = retries_at_once
        # Checks the API's signature on a delivered order (core/signing.py).
        self._signer = signer

    @property
    def exchange_down(self) -> bool:
        """Whether the placer holds its deliveries, the exchange being down as a whole."""
        return self._gate.exchange_down

    async def place(self, event: dict[str, object]) -> Delivery:
        order = order_from_event(event)
        if order is None:
            return outcome("", Outcome.INVALID, Delivery.DROP, "no order")
        trace.get_current_span().set_attribute("order.id", order.id)
        with metrics.IN_FLIGHT.track_inprogress():
            async with self._gate.one_at_a_time(order.id):
                if await self._claimed_as_published(event, order):
                    return await self._place(order)
                return await self._place_delivered(order)

    async def _claimed_as_published(self, event: dict[str, object], order: Order) -> bool:
        """Claims an order that the API signed, without reading it first: True when the claim
        won, and the order is then placed as the event carries it. Sound because an order
        with no decision yet is committed and unsettled: the outbox publishes an order only
        once it is committed, or once the placer voided it (outbox_release.py), and an order is
        settled only after its claim. False for an unsigned event, a late order (most likely a
        redelivery, already claimed, which must not wait for a void) or a claim that did not
        win (a redelivery, a void): the store then says what to do."""
        if self._signer is None or self._late(order):
            return False
        if not self._signer.verified(event.get("data")):
            return False
        if not await self._orders.claim(order.id):
            return False
        self._log_decision(order, Decision.PLACE)
        return True

    async def _place_delivered(self, order: Order) -> Delivery:
        try:
            stored, decision = await self._orders.get_for_placement(order.id)
            if stored is None:
                return self._not_stored(order, decision)
            if stored.status in (OrderStatus.PLACED, OrderStatus.REJECTED):
                message = f"already {stored.status}, skipping it"
                return outcome(order.id, Outcome.ALREADY_DONE, Delivery.SUCCESS, message)
            if decision is None:
                decision = await self._claim(stored)
        except SidecarError as error:
            message = f"cannot read or claim it, retrying: {error}"
            return outcome(order.id, Outcome.STORE_FAILED, Delivery.RETRY, message)
        if decision is Decision.VOID:
            return await self._reject(stored)
        return await self._place(stored)

    @staticmethod
    def _not_stored(order: Order, decision: Decision | None) -> Delivery:
        if decision is Decision.VOID:
            # A commit that failed, whose outbox message outbox_release.py let go.
            message = "never committed, nothing to place"
            return outcome(order.id, Outcome.NOT_COMMITTED, Delivery.SUCCESS, message)
        message = "not in the store, dropping the event"
        return outcome(order.id, Outcome.INVALID, Delivery.DROP, message)

    async def _claim(self, order: Order) -> Decision:
        """Claims the order for the exchange, unless the API voided it first."""
        if self._late(order):
            # Its client may have been answered 500 with the void still on its way.
            await anyio.sleep(self._void_grace_seconds)
        decision = await self._orders.decide(order.id, Decision.PLACE)
        self._log_decision(order, decision)
        return decision

    def _late(self, order: Order) -> bool:
        """Older than the API's deadline: its client may have got a 500."""
        return datetime.now(UTC) - order.created_at > self._answer_deadline

    @staticmethod
    def _log_decision(order: Order, decision: Decision) -> None:
        fields = {"order_id": order.id, "outcome": f"decided_{decision.value}"}
        logger.info("order %s: decided %s", order.id, decision.value, extra=fields)

    async def _reject(self, order: Order) -> Delivery:
        """An order committed after its client was told it failed: it is never placed."""
        rejected = order.model_copy(update={"status": OrderStatus.REJECTED})
        try:
            await self._orders.settle(rejected, "answered 500 before it committed")
        except SidecarError as error:
            message = f"cannot mark it rejected, retrying: {error}"
            return outcome(order.id, Outcome.STORE_FAILED, Delivery.RETRY, message)
        message = "committed after its client got a 500; not placed"
        return outcome(order.id, Outcome.REJECTED, Delivery.SUCCESS, message)

    async def _place(self, order: Order) -> Delivery:
        unplaced = await self._call_exchange_when_up(order)
        if unplaced is not None:
            return unplaced
        try:
            # With its "placed" event, in one transaction.
            await self._orders.settle(order.model_copy(update={"status": OrderStatus.PLACED}))
        except SidecarError as error:
            # The exchange has the order; the retry finds it there by its client order id.
            message = f"{STATUS_NOT_SAVED}: {error}"
            return outcome(order.id, Outcome.STORE_FAILED, Delivery.RETRY, message)
        metrics.PLACED.inc()
        waited = (datetime.now(UTC) - order.created_at).total_seconds()
        metrics.ACCEPT_TO_PLACED_SECONDS.observe(waited)
        return outcome(
            order.id, Outcome.PLACED, Delivery.SUCCESS, f"placed {waited:.3f} s after its 201"
        )

    async def _call_exchange_when_up(self, order: Order) -> Delivery | None:
        """Calls the exchange once it is up (placer/holding.py): None when it accepted the
        order, or else the answer for the sidecar. While the exchange is down as a whole, the
        delivery is held instead of retried; a call that fails on its own is repeated at once
        (`retries_at_once` times), then the order is retried under the runtime's backoff."""
        failed_calls = 0
        while True:
            admission = await self._gate.admit(order)
            if admission.verdict is Verdict.TOO_OLD:
                return await self._give_up(order)
            if admission.verdict is Verdict.OUT_OF_TIME:
                message = "held until its delivery's deadline, the exchange still down; retrying"
                return outcome(order.id, Outcome.EXCHANGE_DOWN, Delivery.RETRY, message)
            if admission.held and (settled := await self._settled_meanwhile(order)) is not None:
                self._gate.abandon(admission)
                return settled
            try:
                await self._call_exchange(order)
            except Exception as error:  # noqa: BLE001 - any exchange failure is retried
                result = self._gate.record(admission, error, order.id)
                await self._record(order, OrderEventKind.ATTEMPT_FAILED, repr(error))
                if result is CallResult.FAILED and self._gate.exchange_down:
                    held = {"order_id": order.id, "outcome": "held"}
                    logger.info("order %s: the exchange is down, holding it", order.id, extra=held)
                    continue
                failed_calls += 1
                if result is CallResult.FAILED and failed_calls <= self._retries_at_once:
                    # The exchange fails calls, not orders: the next call most likely succeeds,
                    # sooner than after the runtime's backoff and a redelivery.
                    continue
                message = f"the exchange failed, retrying: {error!r}"
                return outcome(order.id, Outcome.EXCHANGE_FAILED, Delivery.RETRY, message)
            except BaseException:
                self._gate.abandon(admission)  # cancelled: a probe lets the next one go
                raise
            self._gate.record(admission, None, order.id)
            return None

    async def _settled_meanwhile(self, order: Order) -> Delivery | None:
        """After a hold, the order as the store has it now: a redelivery of its message may have
        placed it meanwhile, on another placer."""
        try:
            stored = await self._orders.get(order.id)
        except SidecarError as error:
            message = f"cannot read it after its hold, retrying: {error}"
            return outcome(order.id, Outcome.STORE_FAILED, Delivery.RETRY, message)
        if stored is None or stored.status not in (OrderStatus.PLACED, OrderStatus.REJECTED):
            return None
        message = f"{stored.status} while it was held, skipping it"
        return outcome(order.id, Outcome.ALREADY_DONE, Delivery.SUCCESS, message)

    async def _give_up(self, order: Order) -> Delivery:
        """An order past the maximum order age is never sent: marked failed with that reason,
        and dropped to the dead-letter topic."""
        if order.status is OrderStatus.FAILED:
            message = "already failed, skipping it"  # a redelivery of one given up
            return outcome(order.id, Outcome.ALREADY_DONE, Delivery.SUCCESS, message)
        reason = self._gate.age_reason
        try:
            await self._orders.save(
                order.model_copy(update={"status": OrderStatus.FAILED, "failure_reason": reason})
            )
        except SidecarError as error:
            message = f"cannot mark it failed, retrying: {error}"
            return outcome(order.id, Outcome.STORE_FAILED, Delivery.RETRY, message)
        return outcome(order.id, Outcome.EXPIRED, Delivery.DROP, f"{reason}; dead-lettering it")

    async def _call_exchange(self, order: Order) -> None:
        """The exchange call, in a thread (the client blocks) once one of the placer's
        exchange slots is free; timed and traced without the wait for the slot."""

        def call() -> None:
            started = time.perf_counter()
            result = "failed"
            # A failed call is expected (one in ten): the span keeps its type and message, not
            # the formatted traceback, which took a twentieth of the placer's CPU.
            with tracer.start_as_current_span(
                "exchange place_order", kind=SpanKind.CLIENT, record_exception=False
            ) as span:
                try:
                    self._place_order(order)
                    result = "accepted"
                except Exception as error:
                    span.add_event("exception", exception_attributes(error))
                    raise
                finally:
                    metrics.EXCHANGE_SECONDS.labels(result).observe(time.perf_counter() - started)

        # The thread runs in a copy of this context: its span is a child of the delivery's.
        await anyio.to_thread.run_sync(call, limiter=self._exchange_slots)

    async def _record(self, order: Order, kind: OrderEventKind, detail: str) -> None:
        """Adds to the order's history where losing the entry loses nothing else."""
        try:
            await self._orders.record_event(order.id, OrderEvent(kind=kind, detail=detail))
        except SidecarError as error:
            logger.warning("order %s: %s not recorded: %s", order.id, kind.value, error)

    async def dead_letter(self, event: dict[str, object]) -> Delivery:
        """Marks a dead-lettered order failed and lists it for a re-drive."""
        order = order_from_event(event)
        if order is None:
            return Delivery.SUCCESS  # nothing to mark: the message was never an order
        try:
            stored = await self._orders.get(order.id)
            if stored is None or stored.status in (OrderStatus.PLACED, OrderStatus.REJECTED):
                return Delivery.SUCCESS
            # The placer's own reason when it gave the order up (its age), else the retries'.
            reason = stored.failure_reason or DEAD_LETTER_REASON
            failed = stored.model_copy(
                update={"status": OrderStatus.FAILED, "failure_reason": reason}
            )
            await self._orders.save(failed)
            await self._orders.add_dead_lettered(order.id)
            dead_lettered = OrderEvent(kind=OrderEventKind.DEAD_LETTERED, detail=reason)
            await self._orders.record_event(order.id, dead_lettered)
        except SidecarError as error:
            message = f"cannot mark it failed, retrying: {error}"
            return outcome(order.id, Outcome.STORE_FAILED, Delivery.RETRY, message)
        metrics.DEAD_LETTERED.inc()
        fields = {"order_id": order.id, "outcome": "dead_lettered"}
        logger.error("order %s: dead-lettered (%s)", order.id, reason, extra=fields)
        return Delivery.SUCCESS
