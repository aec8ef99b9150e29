"""`./bench/run`: POST /orders on this service, the floor and the naive peer, one after the
other on this machine (closed loop, then the floor's open loop), then the placer's
accept→placed latency and drain rate, the service's sustained end-to-end capacity, and the
service's open loop at fractions of that capacity."""

import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import cpu, load, open_loop, report, sustained, systems
from bench.config import bench_settings
from core.config import Settings, settings
from devstack import binaries
from devstack.config import StateStoreKind
from devstack.processes import say
from placer.stock_exchange import ExchangeLedger

# The exchange as the issue of record describes it: 0.5 s a call, 10% failures.
EXCHANGE_LATENCY_SECONDS = Settings.model_fields["EXCHANGE_LATENCY_SECONDS"].default
EXCHANGE_FAILURE_RATE = Settings.model_fields["EXCHANGE_FAILURE_RATE"].default
PLACEMENT_POLL_SECONDS = 1.0
SCALING_CONCURRENCY = 64
SERVICE = "service"

StartSystem = Callable[[], AbstractContextManager[str]]
Points = list[dict[str, Any]]  # a system's closed-loop or open-loop points


def main() -> int:
    say(f"wrk: {binaries.wrk()}; vegeta: {binaries.vegeta()}")
    with tempfile.TemporaryDirectory(prefix="order-bench-") as directory:
        tmp = Path(directory)
        measured = [_measure(system, start, tmp) for system, start in _systems(tmp)]
        placement = _placement(tmp)
        capacity = (
            _sustained(tmp, placement["drain"]["per_s"]) if bench_settings.SUSTAINED else None
        )
        service_open_loop = _service_open_loop(tmp, capacity, measured)
        scaling = _scaling(tmp) if bench_settings.SCALING else None
    results = {
        "date": report.today(),
        "cores": os.cpu_count(),
        "api_workers": settings.API_WORKERS,
        "seconds_per_point": bench_settings.SECONDS,
        "runs": report.with_ratios([run for runs, _ in measured for run in runs]),
        **placement,
        **({"scaling": scaling} if scaling else {}),
        **({"sustained": capacity} if capacity else {}),
        "open_loop": [point for _, points in measured for point in points] + service_open_loop,
    }
    path = report.write(results)
    print(report.markdown(results))
    say(f"Results in {path}")
    return 0


def _systems(tmp: Path) -> list[tuple[str, StartSystem]]:
    ledger = tmp / "ledger.sqlite3"
    return [
        ("floor", lambda: systems.peer(tmp, "floor")),
        (SERVICE, lambda: systems.service(tmp, StateStoreKind.REDIS, ledger, _exchange())),
        (
            "service-postgres",
            lambda: systems.service(tmp, StateStoreKind.POSTGRES, ledger, _exchange()),
        ),
        ("naive", lambda: systems.peer(tmp, "naive")),
    ]


def _exchange() -> dict[str, str]:
    return {
        "EXCHANGE_LATENCY_SECONDS": str(EXCHANGE_LATENCY_SECONDS),
        "EXCHANGE_FAILURE_RATE": str(EXCHANGE_FAILURE_RATE),
    }


def _measure(system: str, start: StartSystem, tmp: Path) -> tuple[Points, Points]:
    """The closed-loop points at each concurrency, then, for a peer in OPEN_LOOP_SYSTEMS, the
    open-loop ones at fractions of its closed-loop peak, on one start of the system. (The
    service's come later, see `_service_open_loop`.)"""
    say(f"Starting {system}")
    with start() as url:
        if bench_settings.WARMUP_SECONDS:
            load.wrk(url, 16, bench_settings.WARMUP_SECONDS)
        runs = []
        for concurrency in bench_settings.CONCURRENCIES:
            before = cpu.sample()
            result = load.wrk(url, concurrency, bench_settings.SECONDS)
            spent = cpu.ms_per_order(before, cpu.sample(), result.requests)
            say(f"{system} at concurrency {concurrency}: {result}; CPU ms per order: {spent}")
            runs.append(
                {
                    "system": system,
                    "replicas": 1,
                    "concurrency": concurrency,
                    **asdict(result),
                    "cpu_ms_per_order": spent,
                }
            )
        points = []
        if system != SERVICE and system in bench_settings.OPEN_LOOP_SYSTEMS:
            peak = max(run["rps"] for run in runs)
            points = _open_loop(system, url, peak, open_loop.CLOSED_LOOP_PEAK, tmp)
    return runs, points


def _service_open_loop(
    tmp: Path, capacity: dict[str, Any] | None, measured: list[tuple[Points, Points]]
) -> Points:
    """The service's open-loop points on a fresh start, at fractions of its sustained capacity:
    above that rate the backlog only grows, and on the start the closed-loop points used its
    placer is still draining what they accepted, on the same cores. Without a sustained
    capacity in this run, at fractions of its closed-loop peak."""
    if SERVICE not in bench_settings.OPEN_LOOP_SYSTEMS:
        return []
    if capacity is not None and capacity["sustained"]:
        rate, basis = capacity["rate_per_s"], open_loop.SUSTAINED_CAPACITY
    else:
        rate = max(run["rps"] for runs, _ in measured for run in runs if run["system"] == SERVICE)
        basis = open_loop.CLOSED_LOOP_PEAK
    ledger = tmp / "open-loop-ledger.sqlite3"
    say(f"Starting {SERVICE} afresh for its open-loop points")
    with systems.service(tmp, StateStoreKind.REDIS, ledger, _exchange()) as url:
        return _open_loop(SERVICE, url, rate, basis, tmp)


def _open_loop(system: str, url: str, capacity: float, basis: str, tmp: Path) -> Points:
    seconds = bench_settings.OPEN_LOOP_SECONDS or bench_settings.SECONDS
    points = []
    for fraction in bench_settings.OPEN_LOOP_FRACTIONS:
        workdir = tmp / f"open-loop-{system}-{fraction}"
        point = open_loop.point(
            system,
            url,
            capacity_per_s=capacity,
            capacity_basis=basis,
            fraction=fraction,
            seconds=seconds,
            workdir=workdir,
        )
        say(f"{system} open loop at {point['rate_per_s']}/s ({fraction:.0%} of its {basis}, "
            f"{capacity}/s): "
            f"p50 {point['p50_ms']} ms, p99 {point['p99_ms']} ms, p99.9 {point['p999_ms']} ms, "
            f"{point['errors']} errors")  # fmt: skip
        points.append(point)
    return points


def _sustained(tmp: Path, drain_per_s: float) -> dict[str, Any]:
    """The highest rate the service takes and places with a flat backlog (sustained.py)."""
    criteria = sustained.Criteria(max_p99_ms=bench_settings.SUSTAINED_MAX_P99_MS)
    seconds = bench_settings.SUSTAINED_SECONDS
    found = sustained.search(
        sustained.plan(bench_settings, drain_per_s),
        lambda rate: sustained.measure(tmp, rate, seconds, _exchange(), criteria),
    )
    return {**found, "criteria": criteria.as_dict()}


def _placement(tmp: Path) -> dict[str, Any]:
    """Accept→placed at a pace the placer keeps up with, then the drain of a backlog."""
    ledger_path = tmp / "placement-ledger.sqlite3"
    with systems.service(tmp, StateStoreKind.REDIS, ledger_path, _exchange()) as url:
        ledger = ExchangeLedger(ledger_path)
        count, rate = bench_settings.LATENCY_ORDERS, bench_settings.LATENCY_RATE_PER_SECOND
        say(f"Accept→placed: {count} orders at {rate}/s")
        paced = asyncio.run(load.post_orders(url, count, rate))
        placed_at = _wait_until_placed(ledger, paced, bound_per_s=rate)
        waits = sorted((placed_at[i] - created) * 1000 for i, created in paced.items())
        say(f"Drain: a backlog of {bench_settings.BACKLOG} orders")
        drain = _drain(url, ledger, bench_settings.BACKLOG, placers=1)
    return {
        "drain": drain,
        "accept_to_placed_ms": {
            "orders": len(waits),
            "p50": round(statistics.median(waits)),
            "p99": round(waits[min(len(waits) - 1, int(len(waits) * 0.99))]),
        },
    }


def _drain(url: str, ledger: ExchangeLedger, orders: int, *, placers: int) -> dict[str, Any]:
    """Posts `orders` at once and times them from the first creation to the last placement."""
    backlog = asyncio.run(load.post_orders(url, orders, None))
    per_placer = (
        settings.PLACER_CONCURRENCY * (1 - EXCHANGE_FAILURE_RATE) / EXCHANGE_LATENCY_SECONDS
    )
    bound = placers * per_placer
    placed_at = _wait_until_placed(ledger, backlog, bound_per_s=bound)
    seconds = max(placed_at[i] for i in backlog) - min(backlog.values())
    return {
        "orders": len(backlog),
        "seconds": round(seconds, 1),
        "per_s": round(len(backlog) / seconds, 2),
        "bound_per_s": round(bound, 2),
        "fraction_of_bound": round(len(backlog) / seconds / bound, 3),
    }


def _scaling(tmp: Path) -> dict[str, Any]:
    """Horizontal scaling on this machine: 1 and 2 API replicas (one worker and one daprd each,
    as Kubernetes runs them) under the same load, then 1 and 2 placers draining a backlog."""
    apis = []
    for count in (1, 2):
        say(f"Scaling: {count} API replica(s) at concurrency {SCALING_CONCURRENCY}")
        ledger = tmp / f"scaling-api-{count}.sqlite3"
        with systems.replicas(tmp, count, 1, ledger, _exchange()) as urls:
            if bench_settings.WARMUP_SECONDS:
                load.wrk(urls, 16, bench_settings.WARMUP_SECONDS)
            result = load.wrk(urls, SCALING_CONCURRENCY, bench_settings.SECONDS)
        say(f"{count} API replica(s): {result}")
        apis.append({"replicas": count, "concurrency": SCALING_CONCURRENCY, **asdict(result)})
    placers = []
    for count in (1, 2):
        say(f"Scaling: {count} placer(s) draining {bench_settings.SCALING_BACKLOG} orders")
        ledger_path = tmp / f"scaling-placers-{count}.sqlite3"
        with systems.replicas(tmp, 1, count, ledger_path, _exchange()) as urls:
            drain = _drain(urls[0], ExchangeLedger(ledger_path), bench_settings.SCALING_BACKLOG,
                           placers=count)  # fmt: skip
        placers.append({"placers": count, **drain})
    return {
        "api_replicas": apis,
        "api_ratio": round(apis[1]["rps"] / apis[0]["rps"], 2),
        "placers": placers,
        "placer_ratio": round(placers[1]["per_s"] / placers[0]["per_s"], 2),
    }


def _wait_until_placed(
    ledger: ExchangeLedger, created: dict[str, float], *, bound_per_s: float
) -> dict[str, float]:
    """When the exchange accepted each order; gives up at twice the time the bound allows."""
    deadline = time.monotonic() + 60 + 2 * len(created) / bound_per_s
    while time.monotonic() < deadline:
        accepted = ledger.acceptance_times()
        if all(order_id in accepted for order_id in created):
            return accepted
        time.sleep(PLACEMENT_POLL_SECONDS)
    missing = sum(1 for order_id in created if order_id not in ledger.acceptance_times())
    raise TimeoutError(f"{missing} of {len(created)} orders not placed in time")


if __name__ == "__main__":
    raise SystemExit(main())
