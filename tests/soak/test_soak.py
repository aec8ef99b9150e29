"""The soak test: orders stream in at a steady rate below saturation for ten minutes, on the
fault matrix's stack (two APIs, two placers, Redis as store and broker), while the memory of
every process and the size and backlog of Redis are sampled every 10 s. After the warm-up,
no process may outgrow its bound; once the stream stops, every backlog must drain and every
accepted order be placed, once. Samples and summary go to tests/soak/results/.

vegeta sends the orders (open loop, as the benchmark's sustained point): a sender that costs
little CPU per order leaves the machine's two cores to the stack it soaks. The rate is half the
sustained capacity of the last `./bench/run` (bench/results/latest.json), or 20 orders/s when it
has none. SOAK_SECONDS and SOAK_RATE (orders per second) override the duration and the rate;
SOAK_STATE_STORE=postgres keeps the orders in PostgreSQL, Redis then being the broker only."""

import functools
import json
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from bench import vegeta
from core.config import PROJECT_ROOT
from devstack.config import StateStoreKind
from placer.stock_exchange import ExchangeLedger
from tests.faults.harness import (
    CLIENT_TIMEOUT_SECONDS,
    Answer,
    CaseReport,
    FaultStack,
    fault_stack,
    numbered_order,
    report,
)
from tests.soak.sampling import Sample, StoreSample, store_sample, take_sample

BENCH_RESULTS = PROJECT_ROOT / "bench" / "results" / "latest.json"
RATE_WITHOUT_CAPACITY = 20


@functools.cache
def rate_per_second() -> int:
    """SOAK_RATE, else half the sustained capacity in the last benchmark's results, else 20/s:
    read when the soak runs, not whenever the tests are collected."""
    if rate := os.environ.get("SOAK_RATE"):
        return int(rate)
    if not BENCH_RESULTS.is_file():
        return RATE_WITHOUT_CAPACITY
    capacity = json.loads(BENCH_RESULTS.read_text()).get("sustained", {}).get("capacity_per_s")
    return round(capacity / 2) if capacity else RATE_WITHOUT_CAPACITY


SECONDS = float(os.environ.get("SOAK_SECONDS", "600"))
STATE_STORE = StateStoreKind(os.environ.get("SOAK_STATE_STORE", StateStoreKind.REDIS.value))
SAMPLE_INTERVAL_SECONDS = 10.0
# A sender this far behind its schedule did not hold the rate: the machine (the stack and the
# sender share its cores) could not carry it, and the figures would be for a lower rate.
SCHEDULE_SLACK = 0.05
# vegeta may send one order more than rate x seconds; each must be a different order.
SPARE_ORDERS = 10
# Connection pools, caches and the allocators' arenas fill during the first minutes.
WARM_UP_SECONDS = min(120.0, 0.2 * SECONDS)
DRAIN_DEADLINE_SECONDS = 120.0
# Once drained, the placers' next trimming rounds (every 10 s) leave each stream its last entry.
TRIM_DEADLINE_SECONDS = 60.0
TRIMMED_STREAM_ENTRIES = 1
# Final RSS may reach warm-up RSS x 1.5 + 20 MiB. Memory that is freed and reused stays
# roughly flat after warm-up, but not exactly: pymalloc and Go's heap keep freed memory and
# grow in steps, and the garbage collectors run when they choose. A leak grows with every
# order: a 100 MiB process (each app and daprd here) may gain 70 MiB, which the orders after
# the warm-up reach with 70 MiB / orders leaked per order (7 KiB at 20/s for 10 minutes, under
# 1 KiB at 150/s); smaller leaks need a longer run to show.
RSS_GROWTH_FACTOR = 1.5
RSS_SLACK_KIB = 20 * 1024
DEAD_LETTER_STREAM = "orders-deadletter"
RESULTS = PROJECT_ROOT / "tests" / "soak" / "results"

pytestmark = [
    pytest.mark.soak,
    # Bounded: the stream, the drain, and a few minutes to start and stop the stack.
    pytest.mark.timeout(SECONDS + DRAIN_DEADLINE_SECONDS + 300),
]


@dataclass
class Traffic:
    answers: dict[int, Answer]  # by the order's quantity
    sending_seconds: float  # from the first order sent to the last

    def held_rate(self) -> float:
        """Orders sent a second: vegeta catches up when it falls behind, but stops at the
        duration whatever it has sent."""
        return len(self.answers) / max(self.sending_seconds, SECONDS)


def order_target(stack: FaultStack, number: int) -> str:
    """Order `number` for vegeta, to the APIs in turn, its quantity in the URL's fragment."""
    api = stack.apis[number % len(stack.apis)]
    order = numbered_order(number)
    return vegeta.target_line(f"{api.url}/orders#{order['quantity']}", order)


def traffic_of(hits: list[vegeta.Hit]) -> Traffic:
    """Each request's answer, under its order's quantity."""
    answers = {
        int(urlsplit(hit.url).fragment): Answer(
            hit.code or None, hit.latency_ms / 1000, answer_body(hit.body)
        )
        for hit in hits
    }
    sending_seconds = hits[-1].sent_at - hits[0].sent_at if hits else 0.0
    return Traffic(answers, sending_seconds)


def answer_body(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return body.decode(errors="replace")


def soak(stack: FaultStack, workdir: Path) -> tuple[Traffic, list[Sample]]:
    """Streams orders for SECONDS, sampling every SAMPLE_INTERVAL_SECONDS, then once more when
    every answer is in."""
    rate = rate_per_second()
    orders = [order_target(stack, n) for n in range(round(SECONDS * rate) + SPARE_ORDERS)]
    samples: list[Sample] = []
    started = time.monotonic()
    with vegeta.attack(
        orders, rate, round(SECONDS), workdir, bodies=True,
        timeout=f"{CLIENT_TIMEOUT_SECONDS:g}s",
    ) as attack:  # fmt: skip
        at = 0.0
        while at < SECONDS:
            time.sleep(max(0.0, started + at - time.monotonic()))
            phase = "warm-up" if at < WARM_UP_SECONDS else "steady"
            samples.append(take_sample(stack, time.monotonic() - started, phase))
            at += SAMPLE_INTERVAL_SECONDS
        attack.wait(timeout_seconds=SECONDS + CLIENT_TIMEOUT_SECONDS + 60)
    samples.append(take_sample(stack, time.monotonic() - started, "end"))
    return traffic_of(attack.hits()), samples


def wait_for_drain(stack: FaultStack, deadline_seconds: float) -> float:
    """Waits until no stream has entries pending or undelivered; returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < deadline_seconds and not drained(
        store_sample(stack.stores.redis.port)
    ):
        time.sleep(1)
    return time.monotonic() - started


def wait_for_trim(stack: FaultStack, deadline_seconds: float) -> None:
    """Waits until the placers have trimmed every stream down to its last entry."""
    started = time.monotonic()
    while time.monotonic() - started < deadline_seconds and not trimmed(
        store_sample(stack.stores.redis.port)
    ):
        time.sleep(1)


def trimmed(store: StoreSample) -> bool:
    return all(s.length <= TRIMMED_STREAM_ENTRIES for s in store.streams.values())


def drained(store: StoreSample) -> bool:
    lags = [lag for stream in store.streams.values() for lag in stream.lag.values()]
    return store.pending() == 0 and all(not lag for lag in lags)


def placed_twice(stack: FaultStack) -> int:
    """Requests placed under more than one order id (the quantity tells requests apart); the
    ledger's repeated submissions of one id are the exchange's de-duplication at work."""
    ledger = ExchangeLedger(stack.ledger_path).submissions()
    stored = stack.stores.stored_orders()
    per_request = Counter(doc["quantity"] for order_id, doc in stored.items() if order_id in ledger)
    return sum(1 for count in per_request.values() if count > 1)


def test_soak(tmp_path: Path) -> None:
    with fault_stack(tmp_path, STATE_STORE) as stack:
        started = time.monotonic()
        sent, samples = soak(stack, tmp_path / "vegeta")
        orders = report("soak", stack, sent.answers, DRAIN_DEADLINE_SECONDS)
        drain_seconds = orders.drain_seconds
        drain_seconds += wait_for_drain(stack, DRAIN_DEADLINE_SECONDS - drain_seconds)
        wait_for_trim(stack, TRIM_DEADLINE_SECONDS)
        samples.append(take_sample(stack, time.monotonic() - started, "drained"))
        twice = placed_twice(stack)
    summary = summarize(sent, samples, orders, twice, drain_seconds)
    write_results(summary, samples)
    assert not summary["failures"], summary["failures"]


def summarize(
    traffic: Traffic, samples: list[Sample], orders: CaseReport, twice: int, drain_seconds: float
) -> dict[str, Any]:
    warm_up = next(s for s in samples if s.phase != "warm-up")
    final = next(s for s in samples if s.phase == "end")
    last = samples[-1]
    processes = memory_summary(samples, warm_up, final)
    figures = {**orders.as_dict(), "placed_twice": twice, "drain_seconds": round(drain_seconds, 1)}
    return {
        "seconds": SECONDS,
        "rate_per_second": rate_per_second(),
        "state_store": STATE_STORE.value,
        "sending_seconds": round(traffic.sending_seconds, 1),
        "warm_up_seconds": WARM_UP_SECONDS,
        "warm_up_sample_at": warm_up.seconds,
        "rss_bound": f"warm-up x {RSS_GROWTH_FACTOR} + {RSS_SLACK_KIB // 1024} MiB "
        "(Redis: beyond its used_memory)",
        "orders": figures,
        "processes": processes,
        "store": {
            "after warm-up": store_sizes(warm_up.store),
            "end of stream": store_sizes(final.store),
            "after drain": store_sizes(last.store),
        },
        "redis_bytes_per_order": bytes_per_order(warm_up.store, final.store),
        "streams": {name: asdict(stream) for name, stream in last.store.streams.items()},
        "failures": failures(
            processes,
            last.store,
            {"after warm-up": warm_up.store, "end of stream": final.store},
            orders,
            twice,
            traffic,
        ),
    }


def memory_summary(
    samples: list[Sample], warm_up: Sample, final: Sample
) -> dict[str, dict[str, Any]]:
    summary = {}
    for label, before in warm_up.rss_kib.items():
        after = final.rss_kib[label]
        bound = rss_bound_kib(label, warm_up, final)
        summary[label] = {
            "warm_up_kib": before,
            "final_kib": after,
            "peak_kib": max(s.rss_kib[label] or 0 for s in samples),
            "bound_kib": bound,
            "within_bound": after is not None and bound is not None and after <= bound,
            # A restarted process starts afresh, and would hide a leak.
            "restarted": len({tuple(sorted(s.pids[label])) for s in samples}) > 1,
        }
    return summary


def rss_bound_kib(label: str, warm_up: Sample, final: Sample) -> int | None:
    before = warm_up.rss_kib[label]
    if before is None:
        return None
    held_before, held_after = held_kib(label, warm_up), held_kib(label, final)
    return round((before - held_before) * RSS_GROWTH_FACTOR + RSS_SLACK_KIB) + held_after


def held_kib(label: str, sample: Sample) -> int:
    """What a process holds by design. Redis as the state store keeps every order (no TTL): its
    data grows with the traffic, so its bound is on the rest of its RSS, and grows with its
    used_memory. (The streams are trimmed: their share stays flat.)"""
    return sample.store.used_memory // 1024 if label == "redis-server" else 0


def bytes_per_order(before: StoreSample, after: StoreSample) -> int | None:
    """How much Redis's data grows per order, to extrapolate to longer runs."""
    orders = after.order_keys - before.order_keys
    return round((after.used_memory - before.used_memory) / orders) if orders else None


def store_sizes(store: StoreSample) -> dict[str, int]:
    return {
        "keys": store.keys,
        "order_keys": store.order_keys,
        "used_memory": store.used_memory,
        "aof_bytes": store.aof_bytes,
        "pending": store.pending(),
        "stream_entries": store.stream_entries(),
    }


def failures(
    processes: dict[str, dict[str, Any]],
    store: StoreSample,
    stores: dict[str, StoreSample],
    orders: CaseReport,
    twice: int,
    traffic: Traffic,
) -> list[str]:
    found = [*memory_failures(processes), *backlog_failures(store), *redis_data_failures(stores)]
    rate, held = rate_per_second(), traffic.held_rate()
    if held < rate * (1 - SCHEDULE_SLACK):
        found.append(f"{len(traffic.answers)} orders sent in {traffic.sending_seconds:.0f} s: "
                     f"{held:.1f} orders/s held, not {rate}")  # fmt: skip
    if orders.answered_201 == 0 or orders.placed != orders.answered_201:
        found.append(f"{orders.answered_201} orders answered 201, {orders.placed} placed")
    if twice or orders.placed_after_500:
        found.append(f"{twice} requests placed twice, {orders.placed_after_500} placed after 500")
    return found


def redis_data_failures(stores: dict[str, StoreSample]) -> list[str]:
    """Redis as the broker only holds stream entries and a few keys: once the streams are
    trimmed, its data must not grow with the orders."""
    if STATE_STORE is StateStoreKind.REDIS:
        return []
    before, after = stores["after warm-up"].used_memory, stores["end of stream"].used_memory
    bound = before * RSS_GROWTH_FACTOR + RSS_SLACK_KIB * 1024
    if after <= bound:
        return []
    return [f"Redis used_memory grew from {before} to {after} bytes, over {round(bound)}"]


def memory_failures(processes: dict[str, dict[str, Any]]) -> list[str]:
    found = []
    for label, p in processes.items():
        if p["final_kib"] is None:
            found.append(f"{label}: gone by the end of the stream")
        elif not p["within_bound"]:
            found.append(
                f"{label}: RSS {p['warm_up_kib']} KiB after warm-up, {p['final_kib']} KiB at "
                f"the end, over the bound of {p['bound_kib']} KiB"
            )
        if p["restarted"]:
            found.append(
                f"{label}: its processes changed during the soak (a crash, or the API's "
                "reloader after an edit under app/ or core/), so its memory figures are void"
            )
    return found


def backlog_failures(store: StoreSample) -> list[str]:
    found = [
        f"stream {name}, group {group}: {count} entries still pending after the drain"
        for name, stream in store.streams.items()
        for group, count in stream.pending.items()
        if count
    ]
    if DEAD_LETTER_STREAM not in store.streams:
        found.append(f"no {DEAD_LETTER_STREAM} stream: is the placer subscribed to it?")
    found += [
        f"stream {name}: {stream.length} entries after the drain, not trimmed"
        for name, stream in store.streams.items()
        if stream.length > TRIMMED_STREAM_ENTRIES
    ]
    return found


def write_results(summary: dict[str, Any], samples: list[Sample]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    document = {"summary": summary, "samples": [asdict(sample) for sample in samples]}
    (RESULTS / "latest.json").write_text(json.dumps(document, indent=2) + "\n")
    (RESULTS / "latest.md").write_text(markdown(summary))


def per_group(counts: dict[str, int | None]) -> str:
    return ", ".join(f"{group}: {count}" for group, count in counts.items()) or "-"


def mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.1f}"


def markdown(summary: dict[str, Any]) -> str:
    sections = [
        [f"# Soak: {summary['seconds']:g} s at {summary['rate_per_second']:g} orders/s "
         f"({summary.get('state_store', 'redis')} state store)", "",
         orders_line(summary)],
        memory_table(summary),
        store_table(summary["store"], summary["redis_bytes_per_order"]),
        streams_table(summary["streams"]),
        [f"Failures: {'; '.join(summary['failures']) or 'none'}"],
    ]  # fmt: skip
    return "\n\n".join("\n".join(lines) for lines in sections) + "\n"


def orders_line(summary: dict[str, Any]) -> str:
    o = summary["orders"]
    return (
        f"Orders: {o['orders']} sent in {summary['sending_seconds']} s; {o['answered_201']} "
        f"answered 201, {o['answered_500']} answered 500, {o['no_answer']} unanswered; "
        f"{o['placed']} placed, {o['dead_lettered']} dead-lettered, {o['lost']} lost, "
        f"{o['placed_twice']} placed twice, {o['resubmitted']} resubmitted (de-duplicated by "
        f"the exchange); slowest 201: {o['slowest_201_ms']} ms; drained in "
        f"{o['drain_seconds']} s."
    )


def memory_table(summary: dict[str, Any]) -> list[str]:
    lines = [
        f"## Memory (RSS in MiB; bound: {summary['rss_bound']}; warm-up sample at "
        f"{summary['warm_up_sample_at']} s)",
        "",
        "| process | warm-up | final | peak | bound | within bound | restarted |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, p in summary["processes"].items():
        lines.append(
            f"| {label} | {mib(p['warm_up_kib'])} | {mib(p['final_kib'])} "
            f"| {mib(p['peak_kib'])} | {mib(p['bound_kib'])} "
            f"| {'yes' if p['within_bound'] else 'NO'} | {'YES' if p['restarted'] else 'no'} |"
        )
    return lines


def store_table(stores: dict[str, dict[str, int]], bytes_per_order: int | None) -> list[str]:
    growth = (
        f"used_memory grows by {bytes_per_order} bytes per order: the orders it stores are kept"
        if bytes_per_order is not None
        else "no orders stored in it: the broker only"
    )
    lines = [
        f"## Redis ({growth}; the streams are trimmed)",
        "",
        "| when | keys | order keys | used_memory MiB | AOF MiB | pending | stream entries |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for when, s in stores.items():
        lines.append(
            f"| {when} | {s['keys']} | {s['order_keys']} | {mib(s['used_memory'] // 1024)} "
            f"| {mib(s['aof_bytes'] // 1024)} | {s['pending']} | {s.get('stream_entries', '-')} |"
        )
    return lines


def streams_table(streams: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["## Streams after the drain", "", "| stream | XLEN | pending | lag |",
             "| --- | --- | --- | --- |"]  # fmt: skip
    for name, s in streams.items():
        lines.append(
            f"| {name} | {s['length']} | {per_group(s['pending'])} | {per_group(s['lag'])} |"
        )
    return lines
