"""Open-loop load on POST /orders with vegeta: requests leave at a constant rate whatever the
answers' pace, and each latency runs from the request's own start. A closed loop (wrk) sends
its next request only once the last is answered, so a stall delays the requests that would
have measured it (coordinated omission); vegeta starts more workers instead."""

import base64
import csv
import json
import signal
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import load
from bench.stats import percentile
from devstack import binaries

NAME = "vegeta"  # as a role in CPU figures
REQUEST_TIMEOUT = "10s"  # as wrk's --timeout
ENCODE_TIMEOUT_SECONDS = 300
# `vegeta encode --to csv` columns (see `vegeta encode -h`).
TIMESTAMP_NS, CODE, LATENCY_NS, ERROR, BODY, URL = 0, 1, 2, 5, 6, 10


@dataclass(frozen=True)
class Hit:
    """One request of an attack and its answer (code 0: none, e.g. a timeout)."""

    sent_at: float  # Unix seconds
    latency_ms: float
    code: int
    error: str
    body: bytes
    url: str = ""  # the target's, as written (with a fragment, if it had one)

    @property
    def answered_at(self) -> float:
        return self.sent_at + self.latency_ms / 1000

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300


@dataclass(frozen=True)
class Latency:
    """The figures of one open-loop point."""

    requests: int
    p50_ms: float
    p99_ms: float
    p999_ms: float
    errors: int  # not answered 2xx, or not answered at all


class Attack:
    """A running `vegeta attack` at `rate` requests a second for `seconds`, sending its
    targets in turn; its results go to a file in `workdir`."""

    def __init__(self, process: subprocess.Popen[bytes], results: Path) -> None:
        self.process = process
        self.results = results

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """Ends the attack early; vegeta still writes the results it has."""
        if self.running():
            self.process.send_signal(signal.SIGINT)

    def wait(self, timeout_seconds: float) -> None:
        if self.process.wait(timeout=timeout_seconds) != 0:
            stderr = self.process.stderr.read().decode() if self.process.stderr else ""
            raise RuntimeError(f"vegeta attack failed ({self.process.returncode}): {stderr}")

    def hits(self) -> list[Hit]:
        """The results, once the attack is over."""
        encoded = subprocess.run(
            [str(binaries.vegeta()), "encode", "--to", "csv", str(self.results)],
            capture_output=True,
            text=True,
            timeout=ENCODE_TIMEOUT_SECONDS,
            check=True,
        )
        return parse_csv(encoded.stdout.splitlines())


@contextmanager
def attack(
    targets: Sequence[str],
    rate: int,
    seconds: int,
    workdir: Path,
    *,
    bodies: bool = False,
    timeout: str = REQUEST_TIMEOUT,
) -> Iterator[Attack]:
    """Starts an attack sending `targets` (lines from `target_line`) in turn, and stops it on
    the way out if it still runs. `bodies`: keep the answers' bodies (the created orders), else
    none are kept. `timeout`: how long a request may wait for its answer."""
    workdir.mkdir(parents=True, exist_ok=True)
    targets_path, results = workdir / "targets.json", workdir / "results.bin"
    targets_path.write_text("".join(f"{line}\n" for line in targets))
    argv = [
        str(binaries.vegeta()), "attack", "-format", "json", "-targets", str(targets_path),
        "-rate", f"{rate}/1s", "-duration", f"{seconds}s", "-timeout", timeout,
        "-max-body", "-1" if bodies else "0", "-output", str(results),
    ]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    running = Attack(process, results)
    try:
        yield running
    finally:
        if running.running():
            process.kill()
            process.wait(timeout=10)


def target_line(url: str, order: dict[str, Any] | None = None) -> str:
    """A POST of `order` (by default the order of bench/order.lua) to `url` as one of vegeta's
    JSON targets. A fragment in `url` never leaves vegeta, yet its results record the URL
    with it: a name for each request, also for one that got no answer."""
    body = json.dumps(order or load.order_body()).encode()
    return json.dumps(
        {
            "method": "POST",
            "url": url,
            "header": {"Content-Type": ["application/json"]},
            "body": base64.b64encode(body).decode(),
        }
    )


def parse_csv(lines: Iterable[str]) -> list[Hit]:
    """Hits from `vegeta encode --to csv`, in the order they were sent."""
    hits = [
        Hit(
            sent_at=int(row[TIMESTAMP_NS]) / 1e9,
            latency_ms=int(row[LATENCY_NS]) / 1e6,
            code=int(row[CODE]),
            error=row[ERROR],
            body=base64.b64decode(row[BODY]),
            url=row[URL],
        )
        for row in csv.reader(lines)
        if row
    ]
    return sorted(hits, key=lambda hit: hit.sent_at)


def latency(hits: list[Hit]) -> Latency:
    """Percentiles over every request, answered or not: a timeout counts with its wait."""
    latencies = [hit.latency_ms for hit in hits]
    return Latency(
        requests=len(hits),
        p50_ms=round(percentile(latencies, 50), 2),
        p99_ms=round(percentile(latencies, 99), 2),
        p999_ms=round(percentile(latencies, 99.9), 2),
        errors=sum(1 for hit in hits if not hit.ok),
    )
