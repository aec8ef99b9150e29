"""Sustained end-to-end capacity: the highest constant rate of orders a second that the service
takes (201) and places on the exchange for as long as the load lasts.

Each rate is tried on a fresh service (`./run` in production): vegeta sends R orders a second
(open loop) for SUSTAINED_SECONDS; the 201s say when each order was accepted, the exchange's
ledger when it was placed, the placer's metrics how many were dead-lettered. A rate is
sustained when the service answered 201 to (nearly) every order, the backlog (accepted - placed
- dead-lettered) stays flat, and accept→placed p99 stays within SUSTAINED_MAX_P99_MS. The search
over rates is a ladder (doubling or halving) and then a bisection, within a set number of rates.
"""

import bisect
import json
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench import cpu, systems, vegeta
from bench.config import BenchSettings
from bench.stats import percentile
from devstack.config import StateStoreKind
from devstack.processes import say
from placer.stock_exchange import ExchangeLedger

SAMPLE_SECONDS = 1.0
METRICS_TIMEOUT_SECONDS = 2.0
PLACED_METRIC = "orders_placed_total"
DEAD_LETTERED_METRIC = "orders_dead_lettered_total"
# A backlog this many seconds of arrivals deep can only be growing: the point stops early.
ABORT_BACKLOG_SECONDS = 15.0
ABORT_AFTER_SECONDS = 10.0
# At most this many backlog samples per tried rate in the results.
SERIES_POINTS = 30


@dataclass(frozen=True)
class Criteria:
    """When a rate counts as sustained."""

    max_p99_ms: float = 3000.0
    # The backlog at the end may hold this many seconds of arrivals: by Little's law the
    # steady backlog is the rate times the mean wait (about 1.5 s), plus retries of failed calls.
    backlog_seconds: float = 5.0
    # ... and may grow over the second half of the run by at most this many seconds of them.
    growth_seconds: float = 1.0
    # Room for the noise of a slow rate, in orders, on both bounds (small: at 20/s against a
    # placer that places 18/s, a 30 s run grows the backlog by about 30 in its second half).
    slack_orders: int = 10
    # Orders answered 201, of those sent: the rest failed or timed out at the API.
    min_accepted_fraction: float = 0.99

    def as_dict(self) -> dict[str, float]:
        return {
            "max_p99_ms": self.max_p99_ms,
            "backlog_seconds": self.backlog_seconds,
            "growth_seconds": self.growth_seconds,
            "slack_orders": self.slack_orders,
            "min_accepted_fraction": self.min_accepted_fraction,
        }


@dataclass
class Verdict:
    reasons: list[str] = field(default_factory=list)  # why the rate is not sustained

    @property
    def sustained(self) -> bool:
        return not self.reasons

    @property
    def flat(self) -> bool:
        """Intake kept up and the backlog stayed flat, whatever the latency."""
        return not any(reason.startswith(("intake", "backlog")) for reason in self.reasons)


def backlog_series(
    start: float,
    seconds: int,
    accepted_at: Iterable[float],
    placed_at: Iterable[float],
    dead_lettered: list[tuple[float, int]],
) -> list[int]:
    """The backlog at start, start + 1 s, ... start + seconds: orders accepted by then, less
    those placed, less those dead-lettered (sampled counts: the last sample by then)."""
    accepted, placed = sorted(accepted_at), sorted(placed_at)
    samples = sorted(dead_lettered)
    series = []
    for second in range(seconds + 1):
        t = start + second
        dead_index = bisect.bisect_right(samples, (t, math.inf))
        dead = samples[dead_index - 1][1] if dead_index else 0
        series.append(bisect.bisect_right(accepted, t) - bisect.bisect_right(placed, t) - dead)
    return series


def growth(series: list[int]) -> float:
    """How much the backlog grew over the second half of the series: the least-squares slope
    there times its length (less noisy than the last sample less the middle one)."""
    half = series[len(series) // 2 :]
    if len(half) < 2:  # a slope needs two points
        return 0.0
    n = len(half)
    mean_x, mean_y = (n - 1) / 2, sum(half) / n
    covariance = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(half))
    variance = sum((x - mean_x) ** 2 for x in range(n))
    return covariance / variance * (n - 1)


def judge(
    rate: float,
    series: list[int],
    p99_ms: float,
    *,
    sent: int,
    accepted: int,
    criteria: Criteria,
    stopped_early: bool = False,
) -> Verdict:
    """Whether the service sustained `rate`, with each reason it did not."""
    reasons = []
    if stopped_early:
        reasons.append(f"backlog over {ABORT_BACKLOG_SECONDS:.0f} s of arrivals: stopped early")
    if accepted < criteria.min_accepted_fraction * sent:
        reasons.append(f"intake: {accepted} of {sent} orders answered 201")
    end_bound = rate * criteria.backlog_seconds + criteria.slack_orders
    if series and series[-1] > end_bound:
        reasons.append(f"backlog: {series[-1]} at the end, over {end_bound:.0f}")
    grown, growth_bound = growth(series), rate * criteria.growth_seconds + criteria.slack_orders
    if grown > growth_bound:
        reasons.append(
            f"backlog: grew by {grown:.0f} over the second half, over {growth_bound:.0f}"
        )
    if p99_ms > criteria.max_p99_ms:
        reasons.append(
            f"latency: accept→placed p99 {p99_ms:.0f} ms, over {criteria.max_p99_ms:.0f}"
        )
    return Verdict(reasons)


def accept_to_placed_ms(
    created: dict[str, float], placed: dict[str, float], settled_at: float
) -> tuple[float, float, int]:
    """p50 and p99 of accept→placed over every created order, and how many were not placed
    by `settled_at`: those count with their wait so far, so the percentiles are then lower
    bounds (an order never placed is as late as it gets)."""
    waits = [(placed.get(order_id, settled_at) - at) * 1000 for order_id, at in created.items()]
    unplaced = sum(1 for order_id in created if order_id not in placed)
    if not waits:
        return 0.0, 0.0, 0
    return percentile(waits, 50), percentile(waits, 99), unplaced


class RateSearch:
    """The rates to try: from `start`, doubling while sustained (halving while not) until one
    of each is known, then the geometric middle of the highest sustained and the lowest
    higher one not sustained, until they are within `precision` of each other; never more
    than `max_points` rates, never outside [min_rate, max_rate]."""

    def __init__(
        self,
        start: int,
        *,
        min_rate: int,
        max_rate: int,
        max_points: int,
        precision: float = 0.1,
        factor: float = 2.0,
    ) -> None:
        self.start = min(max(start, min_rate), max_rate)
        self.min_rate, self.max_rate = min_rate, max_rate
        self.max_points, self.precision, self.factor = max_points, precision, factor
        self.results: dict[int, bool] = {}

    def record(self, rate: int, sustained: bool) -> None:
        self.results[rate] = sustained

    @property
    def best(self) -> int | None:
        return max((rate for rate, ok in self.results.items() if ok), default=None)

    def next_rate(self) -> int | None:
        if len(self.results) >= self.max_points:
            return None
        if not self.results:
            return self.start
        low = self.best
        high = min(
            (rate for rate, ok in self.results.items() if not ok and (low is None or rate > low)),
            default=None,
        )
        if high is None:  # every rate so far sustained: climb
            assert low is not None
            return (
                None if low >= self.max_rate else min(self.max_rate, math.ceil(low * self.factor))
            )
        if low is None:  # none sustained: descend
            return None if high <= self.min_rate else max(self.min_rate, int(high / self.factor))
        if high / low <= 1 + self.precision or high - low <= 1:
            return None
        return min(high - 1, max(low + 1, round(math.sqrt(low * high))))


class FixedRates(RateSearch):
    """The rates given, lowest first, each tried once."""

    def __init__(self, rates: list[int]) -> None:
        super().__init__(min(rates), min_rate=1, max_rate=max(rates), max_points=len(rates))
        self.rates = sorted(set(rates))

    def next_rate(self) -> int | None:
        return next((rate for rate in self.rates if rate not in self.results), None)


def metric_total(text: str, name: str) -> float | None:
    """The sum over every label set of one metric in Prometheus' text format; None when the
    text does not hold it."""
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and line[len(name) : len(name) + 1] in (" ", "{")
    ]
    return sum(values) if values else None


def _placer_counts(metrics_url: str) -> tuple[float | None, float]:
    """Orders placed (None: unknown) and dead-lettered so far, from the placer's metrics."""
    try:
        text = httpx.get(metrics_url, timeout=METRICS_TIMEOUT_SECONDS).text
    except httpx.HTTPError:
        return None, 0.0
    return metric_total(text, PLACED_METRIC), metric_total(text, DEAD_LETTERED_METRIC) or 0.0


@dataclass
class Run:
    """What one rate's load left: when it ran, what was sent and created, and the samples."""

    rate: int
    started: float
    ended: float
    hits: list[vegeta.Hit]
    dead_lettered: list[tuple[float, int]]
    stopped_early: bool
    cpu_ms: dict[str, float]  # by role, per placed order in [started, ended]
    placed: dict[str, float]  # order id → when the exchange accepted it
    settled_at: float

    @property
    def created(self) -> dict[str, float]:
        """Each order answered 201: id → its created_at (Unix seconds)."""
        orders = (json.loads(hit.body) for hit in self.hits if hit.code == httpx.codes.CREATED)
        return {o["id"]: datetime.fromisoformat(o["created_at"]).timestamp() for o in orders}


def measure(
    tmp: Path, rate: int, seconds: int, exchange: dict[str, str], criteria: Criteria
) -> dict[str, Any]:
    """One rate on a fresh service: its figures and verdict."""
    workdir = tmp / f"sustained-{rate}"
    ledger_path = workdir / "ledger.sqlite3"
    with systems.service_endpoints(tmp, StateStoreKind.REDIS, ledger_path, exchange) as service:
        ledger = ExchangeLedger(ledger_path)
        run = _load(
            service, rate=rate, seconds=seconds, workdir=workdir, ledger=ledger, criteria=criteria
        )
    return figures(run, criteria)


def _load(
    service: systems.Service,
    *,
    rate: int,
    seconds: int,
    workdir: Path,
    ledger: ExchangeLedger,
    criteria: Criteria,
) -> Run:
    dead_lettered: list[tuple[float, int]] = []
    stopped_early = False
    before, started = cpu.sample(), time.time()
    with vegeta.attack(
        [vegeta.target_line(f"{service.url}/orders")], rate, seconds, workdir, bodies=True
    ) as attack:
        while attack.running():
            time.sleep(SAMPLE_SECONDS)
            now = time.time()
            placed, dead = _placer_counts(service.placer_metrics_url)
            dead_lettered.append((now, int(dead)))
            # Open loop: by now rate times elapsed orders were sent, accepted or not.
            backlog = rate * (now - started) - (placed or 0) - dead
            deep = backlog > rate * ABORT_BACKLOG_SECONDS + criteria.slack_orders
            if placed is not None and now - started > ABORT_AFTER_SECONDS and deep:
                say(f"{rate}/s: a backlog of {backlog:.0f} orders, stopping this rate")
                attack.stop()
                stopped_early = True
                break
        attack.wait(timeout_seconds=seconds + 60)
    after, ended = cpu.sample(), time.time()
    hits = attack.hits()
    created = sum(1 for hit in hits if hit.code == httpx.codes.CREATED)
    # Orders accepted near the end get the time that the latency bound gives them.
    settle_by = ended + (0 if stopped_early else criteria.max_p99_ms / 1000 + 2)
    placed_at = _wait_for_placements(ledger, created, settle_by)
    settled_at = time.time()
    in_window = sum(1 for at in placed_at.values() if started <= at <= ended)
    spent = cpu.ms_per_order(before, after, in_window)
    spent[vegeta.NAME] = spent.pop(cpu.LOAD_GENERATOR, 0.0)  # its waited-for CPU
    _, dead = _placer_counts(service.placer_metrics_url)
    dead_lettered.append((time.time(), int(dead)))
    return Run(rate, started, ended, hits, dead_lettered, stopped_early, spent, placed_at,
               settled_at)  # fmt: skip


def _wait_for_placements(ledger: ExchangeLedger, created: int, deadline: float) -> dict[str, float]:
    while True:
        placed = ledger.acceptance_times()
        if len(placed) >= created or time.time() >= deadline:
            return placed
        time.sleep(SAMPLE_SECONDS)


def figures(run: Run, criteria: Criteria) -> dict[str, Any]:
    """One rate's figures, with its verdict."""
    created = run.created
    placed = {i: at for i, at in run.placed.items() if i in created}
    window = max(run.ended - run.started, 1e-9)  # the load and its last answers
    seconds = len(run.hits) / run.rate or window  # the load alone: open loop, exact
    whole_seconds = max(1, int(window))
    answered = [h.answered_at for h in run.hits if h.code == httpx.codes.CREATED]
    series = backlog_series(
        run.started, whole_seconds, answered, placed.values(), run.dead_lettered
    )
    p50, p99, unplaced = accept_to_placed_ms(created, placed, run.settled_at)
    verdict = judge(
        run.rate, series, p99, sent=len(run.hits), accepted=len(created), criteria=criteria,
        stopped_early=run.stopped_early,
    )  # fmt: skip
    total = run.cpu_ms.get("total", 0.0)
    cores = os.cpu_count() or 1
    bound = cores * 1000 / total if total else 0.0
    in_window = sum(1 for at in placed.values() if run.started <= at <= run.ended)
    step = max(1, math.ceil(len(series) / SERIES_POINTS))
    return {
        "rate_per_s": run.rate,
        "seconds": round(seconds, 1),
        "sent": len(run.hits),
        "accepted_per_s": round(len(created) / seconds, 1),
        "placed_per_s": round(in_window / window, 1),
        "dead_lettered": run.dead_lettered[-1][1] if run.dead_lettered else 0,
        "backlog_start": series[len(series) // 2],
        "backlog_end": series[-1],
        "accept_to_placed_ms": {"p50": round(p50), "p99": round(p99)},
        "not_placed_at_end": unplaced,
        "cpu_ms_per_placed_order": run.cpu_ms,
        "cpu_bound_per_s": round(bound, 1),
        "fraction_of_cpu_bound": round(run.rate / bound, 3) if bound else 0.0,
        "sustained": verdict.sustained,
        "flat": verdict.flat,
        "reasons": verdict.reasons,
        "backlog_every_s": step,
        "backlog": series[::step],
    }


Measure = Callable[[int], dict[str, Any]]


def search(plan: RateSearch, measure_rate: Measure) -> dict[str, Any]:
    """Tries the plan's rates; the figures of the highest sustained one (else of the lowest
    tried), with every rate tried."""
    tried: list[dict[str, Any]] = []
    while (rate := plan.next_rate()) is not None:
        say(f"Sustained: {rate} orders/s")
        point = measure_rate(rate)
        verdict = "sustained" if point["sustained"] else "; ".join(point["reasons"])
        say(f"{rate}/s: {verdict}")
        plan.record(rate, point["sustained"])
        tried.append(point)
    tried.sort(key=lambda point: point["rate_per_s"])
    sustained = [point for point in tried if point["sustained"]]
    flat = [point["rate_per_s"] for point in tried if point["flat"]]
    chosen = sustained[-1] if sustained else tried[0]
    headline = {k: v for k, v in chosen.items() if k not in ("backlog", "backlog_every_s")}
    return {
        **headline,
        "capacity_per_s": chosen["rate_per_s"] if sustained else 0,
        "highest_flat_rate_per_s": max(flat, default=0),
        "tried": tried,
    }


def plan(settings: BenchSettings, drain_per_s: float | None) -> RateSearch:
    if settings.SUSTAINED_RATES:
        return FixedRates(settings.SUSTAINED_RATES)
    start = settings.SUSTAINED_START_RATE or round(
        0.8 * (drain_per_s or settings.SUSTAINED_MIN_RATE)
    )
    return RateSearch(
        start,
        min_rate=settings.SUSTAINED_MIN_RATE,
        max_rate=settings.SUSTAINED_MAX_RATE,
        max_points=settings.SUSTAINED_MAX_POINTS,
        precision=settings.SUSTAINED_PRECISION,
    )
