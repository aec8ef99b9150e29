"""The exchange breaker's logic: when it opens, how it probes, when it closes."""

import random

import pytest

from core.config import settings
from placer.breaker import BreakerState, CallResult, ExchangeBreaker, Permit

FAILED, ACCEPTED, REFUSED = CallResult.FAILED, CallResult.ACCEPTED, CallResult.REFUSED


def opened(failures: int = 3, interval: float = 2.0) -> ExchangeBreaker:
    breaker = ExchangeBreaker(failures, interval)
    for _ in range(failures):
        breaker.record(FAILED, now=100.0)
    assert breaker.state is BreakerState.OPEN
    return breaker


def test_it_opens_on_the_nth_failed_call_in_a_row() -> None:
    breaker = ExchangeBreaker(3, 2.0)
    breaker.record(FAILED, now=0)
    breaker.record(FAILED, now=0)
    assert (breaker.state, breaker.permit(0)) == (BreakerState.CLOSED, Permit.CALL)
    breaker.record(FAILED, now=1)
    assert (breaker.state, breaker.opened_at) == (BreakerState.OPEN, 1)
    assert breaker.permit(1) is Permit.WAIT


@pytest.mark.parametrize("answer", [ACCEPTED, REFUSED])
def test_an_answer_from_the_exchange_starts_the_count_again(answer: CallResult) -> None:
    # A refused order is the order's failure: the exchange answered, so it is up.
    breaker = ExchangeBreaker(3, 2.0)
    for _ in range(5):
        breaker.record(FAILED, now=0)
        breaker.record(FAILED, now=0)
        breaker.record(answer, now=0)
    assert (breaker.state, breaker.failures) == (BreakerState.CLOSED, 0)


def test_while_open_one_probe_goes_out_per_interval() -> None:
    breaker = opened(interval=2.0)
    assert breaker.seconds_to_probe(101.0) == 1.0
    assert breaker.permit(101.9) is Permit.WAIT
    assert breaker.permit(102.0) is Permit.PROBE
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.seconds_to_probe(102.0) is None  # the probe is out: wait for its outcome
    assert breaker.permit(103.0) is Permit.WAIT  # never two probes at once


def test_a_failed_probe_opens_it_until_the_next_interval() -> None:
    breaker = opened(interval=2.0)
    assert breaker.permit(102.0) is Permit.PROBE
    breaker.record(FAILED, now=102.5, probe=True)
    assert breaker.state is BreakerState.OPEN
    assert breaker.permit(104.4) is Permit.WAIT
    assert breaker.permit(104.5) is Permit.PROBE
    assert breaker.opened_at == 100.0  # the outage began when it first opened


@pytest.mark.parametrize("answer", [ACCEPTED, REFUSED])
def test_a_probe_the_exchange_answers_closes_it(answer: CallResult) -> None:
    breaker = opened()
    assert breaker.permit(102.0) is Permit.PROBE
    breaker.record(answer, now=102.5, probe=True)
    assert (breaker.state, breaker.failures) == (BreakerState.CLOSED, 0)
    assert breaker.permit(102.5) is Permit.CALL


def test_an_abandoned_probe_lets_the_next_one_go_at_once() -> None:
    breaker = opened()
    assert breaker.permit(102.0) is Permit.PROBE
    breaker.abandon_probe(102.1)
    assert breaker.state is BreakerState.OPEN
    assert breaker.permit(102.1) is Permit.PROBE


def test_calls_that_end_while_it_is_open_do_not_close_it() -> None:
    # Calls made before it opened: only a probe tells whether the exchange is back.
    breaker = opened()
    breaker.record(ACCEPTED, now=100.5)
    assert (breaker.state, breaker.permit(102.0)) == (BreakerState.OPEN, Permit.PROBE)
    breaker.record(ACCEPTED, now=102.1)  # a straggler, not the probe
    assert [breaker.state] == [BreakerState.HALF_OPEN]


def test_a_probe_outcome_without_a_probe_out_is_a_mistake() -> None:
    with pytest.raises(RuntimeError):
        opened().record(ACCEPTED, now=101.0, probe=True)


def test_it_needs_a_positive_threshold_and_interval() -> None:
    with pytest.raises(ValueError):
        ExchangeBreaker(0, 1.0)
    with pytest.raises(ValueError):
        ExchangeBreaker(3, 0.0)


def test_the_defaults_never_open_on_the_stand_ins_random_failures() -> None:
    # One call in ten fails at random. A run of n failures starts at a given call with
    # probability 0.9 * 0.1^n (9e-13 for the default n = 12): two million calls, about two
    # hours at the sustained rate the service is sized for, do not come close.
    breaker = ExchangeBreaker(settings.PLACER_BREAKER_FAILURES, 2.0)
    chance = random.Random(15)
    longest = run = 0
    for call in range(2_000_000):
        failed = chance.random() < 0.1  # the stand-in's default failure rate
        breaker.record(FAILED if failed else ACCEPTED, now=float(call))
        run = run + 1 if failed else 0
        longest = max(longest, run)
    assert breaker.state is BreakerState.CLOSED
    assert longest < settings.PLACER_BREAKER_FAILURES
