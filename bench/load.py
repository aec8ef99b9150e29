"""Load on POST /orders: wrk at a fixed concurrency, and an async client for paced orders."""

import asyncio
import json
import os
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from devstack import binaries

WRK_SCRIPT = Path(__file__).parent / "order.lua"


def order_body(quantity: int = 10) -> dict[str, Any]:
    """The limit order that bench/order.lua sends, with a quantity of choice."""
    return {
        "type": "limit",
        "side": "buy",
        "instrument": "US0378331005",
        "limit_price": 101.25,
        "quantity": quantity,
    }


@dataclass
class LoadResult:
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    non_2xx: int


def wrk(urls: str | list[str], concurrency: int, seconds: int) -> LoadResult:
    """`concurrency` connections, each sending its next order when the last is answered;
    spread evenly over several URLs (API replicas) when given more than one."""
    targets = [urls] if isinstance(urls, str) else urls
    threads = max(min(2, concurrency), len(targets))
    argv = [
        str(binaries.wrk()), "-t", str(threads), "-c", str(concurrency), "-d", f"{seconds}s",
        "--timeout", "10s", "-s", str(WRK_SCRIPT), f"{targets[0]}/orders",
    ]  # fmt: skip
    env = {**os.environ, "BENCH_TARGETS": ",".join(urlsplit(url).netloc for url in targets)}
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=seconds + 60, check=True, env=env
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return LoadResult(
        requests=figures["requests"],
        rps=round(figures["requests"] / figures["seconds"], 1),
        p50_ms=figures["p50_ms"],
        p90_ms=figures["p90_ms"],
        p99_ms=figures["p99_ms"],
        # A socket error (refused, reset, timed out) is no 2xx either.
        non_2xx=figures["non_2xx"] + figures["socket_errors"],
    )


async def post_orders(url: str, count: int, rate_per_second: float | None) -> dict[str, float]:
    """Sends `count` orders, paced at `rate_per_second` (or as fast as 64 connections go);
    returns each created order's id and creation time (Unix seconds). Orders not answered
    201 (or not answered) are left out."""
    created: dict[str, float] = {}
    slots = asyncio.Semaphore(64)
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=url, timeout=15, limits=limits) as client:

        async def send(quantity: int) -> None:
            async with slots:
                try:
                    body = order_body(quantity)
                    response = await client.post("/orders", json=body)
                except httpx.HTTPError:
                    return  # not created, as far as we know: left out of the figures
            if response.status_code == httpx.codes.CREATED:
                order = response.json()
                created[order["id"]] = _unix_seconds(order["created_at"])

        tasks = []
        start = time.monotonic()
        for n in range(count):
            if rate_per_second is not None:
                await asyncio.sleep(max(0.0, start + n / rate_per_second - time.monotonic()))
            tasks.append(asyncio.create_task(send(n + 1)))
        await asyncio.gather(*tasks)
    return created


def _unix_seconds(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()
