"""Latency at a fixed rate: vegeta at a fraction of a system's capacity (its closed-loop peak,
or for the service its sustained end-to-end capacity)."""

from pathlib import Path
from typing import Any

from bench import cpu, vegeta

# What a point's rate is a fraction of.
CLOSED_LOOP_PEAK = "closed-loop peak"
SUSTAINED_CAPACITY = "sustained capacity"


def point(
    system: str,
    url: str,
    *,
    capacity_per_s: float,
    capacity_basis: str,
    fraction: float,
    seconds: int,
    workdir: Path,
) -> dict[str, Any]:
    """`fraction` of `capacity_per_s` for `seconds`: p50, p99, p99.9 and errors, and the CPU
    the load generator took per request (it shares the cores with the system)."""
    rate = max(1, round(capacity_per_s * fraction))
    before = cpu.sample()
    with vegeta.attack([vegeta.target_line(f"{url}/orders")], rate, seconds, workdir) as attack:
        attack.wait(timeout_seconds=seconds + 60)
    spent = cpu.ms_per_order(before, cpu.sample(), 1)[cpu.LOAD_GENERATOR]
    figures = vegeta.latency(attack.hits())
    return {
        "system": system,
        "rate_per_s": rate,
        "fraction_of_capacity": fraction,
        "capacity_per_s": capacity_per_s,
        "capacity_basis": capacity_basis,
        "seconds": seconds,
        "requests": figures.requests,
        "p50_ms": figures.p50_ms,
        "p99_ms": figures.p99_ms,
        "p999_ms": figures.p999_ms,
        "errors": figures.errors,
        "vegeta_cpu_ms_per_request": round(spent / max(figures.requests, 1), 3),
    }
