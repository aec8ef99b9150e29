"""Whether the exchange is down as a whole, judged from the outcomes of the placer's calls to it:
a circuit breaker, as pure logic (the caller passes the time). placer/holding.py drives it.

- closed: calls go out. `failures_to_open` failed calls in a row open it. A failed call is one
  the exchange failed, did not answer in time or could not be reached; an order the exchange
  answered and refused is the order's own failure, and shows the exchange is up.
- open: no call goes out, except one probe every `probe_interval_seconds` (half-open).
- half-open: the probe is out. If the exchange answers it (accepted or refused), the breaker
  closes; if it fails, the breaker opens again until the next probe.

Consecutive failures, not a failure rate: a call fails at random now and then (the stand-in one
in ten), and with calls that fail independently with probability p, a run of n failures starts
at a given call with probability (1 - p) p^n: for p = 0.1 and n = 12 (the default), 9e-13, once
in about a hundred years at 330 calls per second (and a breaker opened by chance closes with its
first probe). When the exchange goes down, every call in flight fails within one call's time,
and the breaker opens at once; a single order retried alone opens it within its own retries (13
attempts under components/common/resiliency.yaml).
"""

from dataclasses import dataclass, field
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"  # the exchange is up: calls go out
    OPEN = "open"  # the exchange is down: deliveries wait, one probe per interval
    HALF_OPEN = "half_open"  # a probe is out


class CallResult(StrEnum):
    """What one call to the exchange told about the exchange."""

    ACCEPTED = "accepted"  # it took the order
    REFUSED = "refused"  # it answered and refused this order: it is up, the order is at fault
    FAILED = "failed"  # it failed the call, did not answer in time, or could not be reached


class Permit(StrEnum):
    CALL = "call"  # call the exchange
    PROBE = "probe"  # call it, as the probe that tells whether it is back
    WAIT = "wait"  # do not call it now


@dataclass
class ExchangeBreaker:
    failures_to_open: int
    probe_interval_seconds: float
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0  # failed calls in a row, while closed
    opened_at: float | None = None  # when it last opened from closed
    _next_probe_at: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        if self.failures_to_open < 1 or self.probe_interval_seconds <= 0:
            raise ValueError("failures_to_open must be at least 1, the probe interval positive")

    def permit(self, now: float) -> Permit:
        """Whether a call may go out now. A PROBE turns the breaker half-open: the caller must
        then `record` the probe's outcome, or `abandon_probe` if it made no call."""
        if self.state is BreakerState.CLOSED:
            return Permit.CALL
        if self.state is BreakerState.OPEN and now >= self._next_probe_at:
            self.state = BreakerState.HALF_OPEN
            return Permit.PROBE
        return Permit.WAIT

    def record(self, result: CallResult, now: float, *, probe: bool = False) -> None:
        if probe:
            self._probed(result, now)
        elif self.state is BreakerState.CLOSED:
            self._called(result, now)
        # Calls that went out before the breaker opened end while it is open: only probes count.

    def abandon_probe(self, now: float) -> None:
        """The probe made no call (its order was settled meanwhile): the next one may go now."""
        if self.state is BreakerState.HALF_OPEN:
            self.state = BreakerState.OPEN
            self._next_probe_at = now

    def seconds_to_probe(self, now: float) -> float | None:
        """How long until the next probe may go out; None unless the breaker is open."""
        if self.state is not BreakerState.OPEN:
            return None
        return max(0.0, self._next_probe_at - now)

    def _called(self, result: CallResult, now: float) -> None:
        if result is not CallResult.FAILED:
            self.failures = 0
            return
        self.failures += 1
        if self.failures >= self.failures_to_open:
            self.opened_at = now
            self._open(now)

    def _probed(self, result: CallResult, now: float) -> None:
        if self.state is not BreakerState.HALF_OPEN:
            raise RuntimeError(f"a probe's outcome while the breaker is {self.state}")
        if result is CallResult.FAILED:
            self._open(now)
        else:
            self.state, self.failures = BreakerState.CLOSED, 0

    def _open(self, now: float) -> None:
        self.state = BreakerState.OPEN
        self._next_probe_at = now + self.probe_interval_seconds
