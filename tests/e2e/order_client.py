"""A client of the order API that runs inside the cluster, for the disruption tests
(tests/e2e/test_cluster_disruption.py): it posts limit orders through the API's Service at a
steady pace until it is told to stop (SIGTERM), each under an Idempotency-Key of its own, and
prints every answer.

Standard library only: it runs with the API image's Python in a pod of its own, sent as the
source of `python -c` followed by a call of `main` with its settings as JSON. urllib opens a new
connection for each request, so every order is routed by kube-proxy afresh.

Output: a line `order <orders answered so far> <JSON>` as each order ends, with its key, its
number and its attempts, in order: `{"status": 201, "id": ..., "replayed": ...}`, `{"status":
500, "body": ..., "server": ...}` or `{"error": "<exception>"}` (no answer: refused, reset,
timed out), each with the time it ended (`at`, Unix seconds); then `done <seconds>`. (One
line per order: the container runtime splits long lines.)

Before the first order it waits until the API answers its health check through the Service: a
new pod's address reaches the NetworkPolicy's allowed sources seconds after the pod starts
(the policy controller syncs on pod events), and until then the API's pods refuse it. That
wait is the cluster's, not the API's: it is reported (`reachable <seconds>`), not counted.
"""

import http.client
import itertools
import json
import signal
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from types import FrameType
from typing import Any

ORDER = "order"
DONE = "done"
REACHABLE = "reachable"
REACHABLE_WITHIN_SECONDS = 120
# Waits between attempts of one order: doubled from the first up to the last.
FIRST_BACKOFF_SECONDS = 0.25
MAX_BACKOFF_SECONDS = 2.0


@dataclass(frozen=True)
class Settings:
    url: str  # the API's POST /orders
    health_url: str  # the API's health check, called until it answers before the first order
    body: dict[str, Any]  # each order's body; its quantity is replaced by the order's number
    key_prefix: str  # the orders' Idempotency-Keys are <key_prefix>-<number>
    workers: int  # orders in flight at once
    pause_seconds: float  # each worker's pause between two orders
    max_orders: int
    max_seconds: float  # no order is started later than this
    timeout_seconds: float  # of each request
    retry: bool  # repeat a 500 or a connection error, with the same key
    max_attempts: int  # of one order, when retrying


def attempt(settings: Settings, body: dict[str, Any], key: str) -> dict[str, Any]:
    """One POST: its status and order id, its 500's body, or the error that kept an answer
    from arriving."""
    request = urllib.request.Request(
        settings.url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Idempotency-Key": key},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.timeout_seconds) as response:
            order = json.loads(response.read())
            replayed = response.headers.get("Idempotent-Replayed") == "true"
            return {"status": response.status, "id": order["id"], "replayed": replayed}
    except urllib.error.HTTPError as error:
        try:
            text = error.read().decode(errors="replace")
        except (OSError, http.client.HTTPException) as cut:
            text = f"(body lost: {cut!r})"
        # Who answered, should it not be the API.
        return {"status": error.code, "body": text, "server": error.headers.get("Server")}
    except (OSError, http.client.HTTPException, ValueError, KeyError) as error:
        # Refused, reset, timed out, or an answer cut short.
        return {"error": f"{type(error).__name__}: {error}"}


def wait_reachable(settings: Settings) -> float:
    """Seconds until the API's health check answered (any HTTP status: the path is open)."""
    started = time.monotonic()
    while True:
        try:
            with urllib.request.urlopen(settings.health_url, timeout=settings.timeout_seconds):
                break
        except urllib.error.HTTPError:
            break
        except (OSError, http.client.HTTPException):
            if time.monotonic() - started > REACHABLE_WITHIN_SECONDS:
                raise
            time.sleep(0.5)
    return time.monotonic() - started


def retryable(outcome: dict[str, Any]) -> bool:
    return outcome.get("status") == 500 or "error" in outcome


def place(settings: Settings, number: int) -> dict[str, Any]:
    """One order until it is answered 201, or until it is not to be repeated."""
    key = f"{settings.key_prefix}-{number}"
    body = {**settings.body, "quantity": number}
    attempts: list[dict[str, Any]] = []
    for count in range(1, settings.max_attempts + 1):
        outcome = {**attempt(settings, body, key), "at": round(time.time(), 1)}
        attempts.append(outcome)
        if not (settings.retry and retryable(outcome)) or count == settings.max_attempts:
            break
        time.sleep(min(FIRST_BACKOFF_SECONDS * 2 ** (count - 1), MAX_BACKOFF_SECONDS))
    return {"key": key, "quantity": number, "attempts": attempts}


class Load:
    """Workers that take the next order number until stopped, out of numbers or out of
    time."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stop = threading.Event()
        self.answered = 0
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._deadline = time.monotonic() + settings.max_seconds

    def next_number(self) -> int | None:
        """The next order's number; the numbers sent are 1 to N without a gap."""
        with self._lock:
            if self.stop.is_set() or time.monotonic() > self._deadline:
                return None
            number = next(self._numbers)
            return number if number <= self.settings.max_orders else None

    def work(self) -> None:
        while (number := self.next_number()) is not None:
            order = place(self.settings, number)
            with self._lock:
                self.answered += 1
                print(f"{ORDER} {self.answered} {json.dumps(order)}", flush=True)
            self.stop.wait(self.settings.pause_seconds)


def main(settings_json: str) -> None:
    settings = Settings(**json.loads(settings_json))
    print(f"{REACHABLE} {wait_reachable(settings):.1f}", flush=True)
    load = Load(settings)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        load.stop.set()

    signal.signal(signal.SIGTERM, stop)
    started = time.monotonic()
    workers = [threading.Thread(target=load.work) for _ in range(settings.workers)]
    for worker in workers:
        worker.start()
    for worker in workers:
        while worker.is_alive():  # a timed join, so the signal handler runs
            worker.join(timeout=0.5)
    print(f"{DONE} {time.monotonic() - started:.1f}", flush=True)
