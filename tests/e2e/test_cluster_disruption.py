"""Disruption under load on the cluster, with the release as `up` installs it:

- a placer pod and an API pod deleted with `--grace-period=0 --force` while a client inside
  the cluster posts orders through the API's Service and, as a careful client does, repeats a
  500 or a connection error with the same Idempotency-Key: every order ends with exactly one
  id, readable and placed, accepted by the shared exchange stand-in under that one id, and
  every answer but a 201 is the exact 500;
- a `helm upgrade` that rolls both Deployments (two pods each) while a client that never
  repeats anything posts orders: every answer is a 201, every order placed, and within two
  minutes (the orders a stopping sidecar stranded are handed back, not left for 180 s).

The client (tests/e2e/order_client.py) runs in a pod of the release's namespace with the
labels the chart's NetworkPolicy admits to the API. Its counts (connection errors, 500s,
repeats) and the time until every order was placed go to cluster/results/disruption.json.

With the cluster suite; alone:
`./run_tests.sh -m kind tests/e2e/test_cluster_disruption.py` (seven to eight minutes).
"""

import dataclasses
import json
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from app.errors import PLACEMENT_FAILED_MESSAGE
from cluster import kind, release
from cluster.config import cluster_settings
from cluster.docker import Engine, docker
from cluster.steps import RESULTS
from devstack import binaries
from devstack.processes import say
from tests.chart.network_policy import Endpoint, allows
from tests.chart.rendering import of_kind, render
from tests.e2e import order_client
from tests.e2e.cluster_support import (
    RELEASE_LABELS,
    component_pods,
    kubectl,
    kubectl_result,
    pod_ready,
    port_forward,
    run_client_pod,
    staying,
    wait_release_settled,
)
from tests.factories import limit_order_body

pytestmark = [pytest.mark.kind, pytest.mark.timeout(25 * 60)]

DISRUPTION_RESULTS = RESULTS.with_name("disruption.json")
API_IN_CLUSTER = f"http://{release.RELEASE}-api.{release.NAMESPACE}.svc.cluster.local"
# Finds the client's pod; the chart's NetworkPolicy does not look at it.
RUN_LABEL = "order-service.test/run"
PLACEMENT_FAILED = {"message": PLACEMENT_FAILED_MESSAGE}

# The load: about 7 orders a second, under what one placer pod places (about 18).
CLIENT_WORKERS = 3
CLIENT_PAUSE_SECONDS = 0.4
CLIENT_MAX_SECONDS = 480  # no order starts later, whatever happens to the test
CLIENT_TIMEOUT_SECONDS = 10  # of each request
CLIENT_MAX_ATTEMPTS = 60  # about two minutes of repeats (backoff up to 2 s): an API pod's return
# Orders answered before a disruption, and after it before the next step: the load is on.
LEAD_ORDERS = 30
STEP_SECONDS = 240  # for those orders, a replaced API pod's start included
POD_SECONDS = 300  # for pods to be replaced, rolled or gone
# A delivery cut by a killed placer is redelivered after pubsub.processingTimeout (180 s) and
# the next redeliverInterval check (15 s); then it is placed in seconds.
PLACED_WITHIN_SECONDS = 360
# A rolling upgrade stops the placers' sidecars gracefully: the orders one read after closing its
# subscription are handed back within about a minute (placer/handback.py), well before the
# processingTimeout (180 s) that a crash leaves them to.
ROLLED_PLACED_WITHIN_SECONDS = 120
HELM_SECONDS = 600

STOP_CLIENT = "import os, signal; os.kill(1, signal.SIGTERM)"
T = TypeVar("T")


def test_the_client_pod_is_admitted_to_the_api_by_the_network_policy() -> None:
    """The client's labels are those the chart's API policy admits (the release's own pods),
    and no Service of the release selects the client."""
    manifests = render("-f", str(release.DEV_VALUES), "--set", "networkPolicy.enabled=true")
    policy = next(p for p in of_kind(manifests, "NetworkPolicy")
                  if p["metadata"]["name"] == f"{release.RELEASE}-api")  # fmt: skip
    client = Endpoint("10.244.0.200", release.NAMESPACE, {**RELEASE_LABELS, RUN_LABEL: "x"})
    stranger = Endpoint("10.244.0.201", release.NAMESPACE, {RUN_LABEL: "x"})
    assert allows(policy, "ingress", client, 8000)
    assert not allows(policy, "ingress", stranger, 8000)
    for service in of_kind(manifests, "Service"):
        selector = service["spec"].get("selector", {})
        assert not selector.items() <= client.labels.items(), service["metadata"]["name"]


@pytest.mark.usefixtures("pod_subnet_unreachable")
def test_forced_deletion_of_a_placer_and_an_api_pod_loses_nothing(
    cluster: Engine, exchange_url: str
) -> None:
    wait_release_settled()
    placers, apis = _ready_pods("placer"), _ready_pods("api")
    figures: dict[str, Any] = {}
    with client_load(retry=True) as load:
        load.wait_answered(LEAD_ORDERS)
        figures["placer_replaced_seconds"] = _force_delete("placer", placers[0])
        load.wait_answered(LEAD_ORDERS)
        figures["api_replaced_seconds"] = _force_delete("api", apis[0])
        load.wait_answered(LEAD_ORDERS)  # through the new API pod
        orders = load.stop()
    counts = _answer_counts(orders)
    ids = _one_id_each(orders)
    # The API's only pod went: its clients were refused (or cut off) until the new one was up.
    assert counts["connection_errors"] + counts["answers_500"] > 0, counts
    placed_seconds = _wait_readable_and_placed(orders)
    repeats = _placed_once_each(exchange_url, ids)
    _record("forced_deletion", {**counts, **figures, "repeated_exchange_calls": repeats,
                                "all_placed_seconds_after_load": placed_seconds})  # fmt: skip


@pytest.mark.usefixtures("pod_subnet_unreachable")
def test_a_rolling_upgrade_under_load_answers_every_order_201(
    cluster: Engine, exchange_url: str, installed_values: dict[str, str]
) -> None:
    two_each = {**installed_values, "api.replicaCount": "2", "placer.replicaCount": "2"}
    rollout = uuid.uuid4().hex[:8]
    figures: dict[str, Any] = {}
    try:
        _helm_upgrade(two_each)
        for component in ("api", "placer"):
            _wait_pods(component, 2)
        with client_load(retry=False) as load:
            load.wait_answered(LEAD_ORDERS)
            started = time.monotonic()
            # A new pod annotation changes both pod templates: both Deployments roll.
            _helm_upgrade({**two_each, "podAnnotations.rollout": rollout})
            for component in ("api", "placer"):
                _wait_pods(component, 2, rollout=rollout)
            figures["roll_seconds"] = round(time.monotonic() - started, 1)
            load.wait_answered(LEAD_ORDERS)
            orders = load.stop()
        counts = _answer_counts(orders)
        failed = [o for o in orders if [a.get("status") for a in o["attempts"]] != [201]]
        assert not failed, f"{len(failed)} orders not answered 201: {failed[:5]} ({counts})"
        ids = _one_id_each(orders)
        placed_seconds = _wait_readable_and_placed(orders, ROLLED_PLACED_WITHIN_SECONDS)
        repeats = _placed_once_each(exchange_url, ids)
        _record("rolling_upgrade", {**counts, **figures, "repeated_exchange_calls": repeats,
                                    "all_placed_seconds_after_load": placed_seconds})  # fmt: skip
    finally:
        # Back to the release as `up` installs it: one pod each, no rollout annotation.
        _helm_upgrade(installed_values)
        for component in ("api", "placer"):
            _wait_pods(component, 1, rollout=None)


@pytest.fixture(scope="module")
def pod_subnet_unreachable(cluster: Engine) -> None:
    """Packets to the address of a pod just deleted (kube-proxy's rules lag a moment behind)
    or of a Service left without endpoints are refused on the node, not routed out of it (`up`
    sets this)."""
    node = f"{cluster_settings.CLUSTER_NAME}-control-plane"
    routes = docker(cluster, "exec", node, "ip", "route", "show", "type", "unreachable")
    assert kind.POD_SUBNET in routes.split(), routes
    # And a Service address without endpoints (a forwarded packet that kube-proxy left as is).
    table = str(kind.UNROUTED_TABLE)
    routes = docker(cluster, "exec", node, "ip", "route", "show", "table", table)
    assert routes.split()[:2] == ["unreachable", kind.SERVICE_SUBNET], routes
    rules = docker(cluster, "exec", node, "ip", "rule", "show")
    assert f"to {kind.SERVICE_SUBNET} lookup {table}" in rules, rules


@pytest.fixture(scope="module")
def installed_values(cluster: Engine) -> dict[str, str]:
    """The values `up` installed the release with, beside values-dev.yaml, as it recorded them
    (the cluster fixture has just run it)."""
    stages = json.loads(RESULTS.read_text())["stages"]
    values: dict[str, str] = next(s for s in stages if s["stage"] == "release")["values"]
    return values


# The client


class ClientLoad:
    """order_client.py in a pod of its own, from its start until it is stopped."""

    def __init__(self, *, retry: bool) -> None:
        self.run = uuid.uuid4().hex[:8]
        settings = order_client.Settings(
            url=f"{API_IN_CLUSTER}/orders", health_url=f"{API_IN_CLUSTER}/health/live",
            body=limit_order_body(), key_prefix=self.run,
            workers=CLIENT_WORKERS, pause_seconds=CLIENT_PAUSE_SECONDS, max_orders=100_000,
            max_seconds=CLIENT_MAX_SECONDS, timeout_seconds=CLIENT_TIMEOUT_SECONDS,
            retry=retry, max_attempts=CLIENT_MAX_ATTEMPTS,
        )  # fmt: skip
        source = Path(order_client.__file__).read_text()
        script = f"{source}\nmain({json.dumps(dataclasses.asdict(settings))!r})\n"
        labels = {**RELEASE_LABELS, RUN_LABEL: self.run}
        self._pool = ThreadPoolExecutor(1)
        wait = CLIENT_MAX_SECONDS + 300  # then an order's last repeats, then the pod's end
        self._ended = self._pool.submit(run_client_pod, script, labels=labels,
                                        timeout_seconds=wait)  # fmt: skip
        self.pod = _poll(self._pod_name, what="the client pod", timeout_seconds=120)

    def _pod_name(self) -> str:
        if self._ended.done():
            self._ended.result()  # raises what ended it
            raise AssertionError("the client pod ended before it was found")
        return kubectl("-n", release.NAMESPACE, "get", "pods", "-l", f"{RUN_LABEL}={self.run}",
                       "-o", "jsonpath={.items[*].metadata.name}")  # fmt: skip

    def answered(self) -> int:
        """Orders answered so far (0 while the container has not started)."""
        result = kubectl_result("-n", release.NAMESPACE, "logs", self.pod, "--tail=1")
        words = result.stdout.split(maxsplit=2)
        return int(words[1]) if result.returncode == 0 and words[:1] == [order_client.ORDER] else 0

    def wait_answered(self, more: int) -> None:
        target = self.answered() + more
        _poll(lambda: self.answered() >= target, what=f"{target} orders answered",
              timeout_seconds=STEP_SECONDS)  # fmt: skip

    def stop(self) -> list[dict[str, Any]]:
        """Stops the client (orders under way finish, with their repeats); every order's
        attempts, by number."""
        kubectl("-n", release.NAMESPACE, "exec", self.pod, "--", "python", "-c", STOP_CLIENT)
        phase, output = self._ended.result(timeout=CLIENT_MAX_SECONDS + 360)
        assert phase == "Succeeded", output[-3000:]
        lines = output.splitlines()
        assert lines[-1].startswith(order_client.DONE), lines[-3:]
        orders = [json.loads(line.split(maxsplit=2)[2]) for line in lines
                  if line.startswith(order_client.ORDER + " ")]  # fmt: skip
        orders.sort(key=lambda order: int(order["quantity"]))
        # The client sends numbers 1 to N: none went missing on its side.
        assert [order["quantity"] for order in orders] == list(range(1, len(orders) + 1))
        return orders

    def close(self) -> None:
        if not self._ended.done():
            with suppress(AssertionError, subprocess.TimeoutExpired):
                kubectl("-n", release.NAMESPACE, "exec", self.pod, "--", "python", "-c",
                        STOP_CLIENT)  # fmt: skip
        # Whatever the pod's end says: the test is failing already, or stop() read it.
        with suppress(Exception):
            self._ended.result(timeout=CLIENT_MAX_SECONDS + 360)
        self._pool.shutdown(wait=False)


@contextmanager
def client_load(*, retry: bool) -> Iterator[ClientLoad]:
    load = ClientLoad(retry=retry)
    try:
        yield load
    finally:
        load.close()


# What the client saw, and what became of its orders


def _answer_counts(orders: list[dict[str, Any]]) -> dict[str, Any]:
    attempts = [attempt for order in orders for attempt in order["attempts"]]
    errors = Counter(a["error"].split(":")[0] for a in attempts if "error" in a)
    return {
        "orders": len(orders),
        "attempts": len(attempts),
        "connection_errors": sum(errors.values()),
        "connection_error_kinds": dict(errors),
        "answers_500": sum(a.get("status") == 500 for a in attempts),
        "retries": len(attempts) - len(orders),
        "orders_retried": sum(len(order["attempts"]) > 1 for order in orders),
        "most_attempts": max(len(order["attempts"]) for order in orders),
        "replayed": sum(a.get("replayed") is True for a in attempts),
    }


def _one_id_each(orders: list[dict[str, Any]]) -> list[str]:
    """Each order ended with a 201, and only with 500s of the exact body or connection errors
    before it; its id, no two orders sharing one."""
    ids = []
    for order in orders:
        *before, last = order["attempts"]
        assert last.get("status") == 201, order
        for attempt in before:
            if "error" not in attempt:
                assert attempt["status"] == 500, order
                assert json.loads(attempt["body"]) == PLACEMENT_FAILED, order
        ids.append(last["id"])
    assert len(set(ids)) == len(ids)
    return ids


def _wait_readable_and_placed(
    orders: list[dict[str, Any]], within_seconds: float = PLACED_WITHIN_SECONDS
) -> float:
    """Every order readable with GET /orders/{id} as it was sent, then placed within
    `within_seconds`; the seconds until all were. A port-forward opened now: one opened before
    would have lost its pod."""
    started = time.monotonic()
    quantities = {order["attempts"][-1]["id"]: order["quantity"] for order in orders}
    with (
        port_forward(f"svc/{release.RELEASE}-api", 80, "/health/ready") as url,
        httpx.Client(base_url=url, timeout=10) as client,
        ThreadPoolExecutor(8) as pool,
    ):

        def read(order_id: str) -> dict[str, Any]:
            response = client.get(f"/orders/{order_id}")
            assert response.status_code == 200, (order_id, response.text)
            stored: dict[str, Any] = response.json()
            return stored

        pending = set(quantities)
        deadline = started + within_seconds
        while pending:
            stored = list(pool.map(read, sorted(pending)))
            assert all(quantities[s["id"]] == s["quantity"] for s in stored)
            pending = {s["id"] for s in stored if s["status"] != "placed"}
            assert not pending or time.monotonic() < deadline, (
                f"{len(pending)} of {len(quantities)} orders not placed within "
                f"{within_seconds} s: {sorted(pending)[:5]}"
            )
            time.sleep(2)
    return round(time.monotonic() - started, 1)


def _placed_once_each(exchange_url: str, ids: list[str]) -> int:
    """Each order accepted by the shared exchange stand-in under its one id; the calls that
    repeated an accepted id (a delivery cut after the exchange had it, answered there with the
    first acceptance), counted for the results. The stand-in outlives test runs: ours only."""
    placements = httpx.get(f"{exchange_url}/placements", timeout=10).json()
    accepted = {order_id: placements["accepted"].get(order_id, 0) for order_id in ids}
    assert not [order_id for order_id, count in accepted.items() if count < 1]
    return sum(count - 1 for count in accepted.values())


def _record(section: str, figures: dict[str, Any]) -> None:
    """Recorded for the docs, not asserted."""
    document = json.loads(DISRUPTION_RESULTS.read_text()) if DISRUPTION_RESULTS.exists() else {}
    figures["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    document[section] = figures
    DISRUPTION_RESULTS.write_text(json.dumps(document, indent=2) + "\n")


# The release's pods


def _ready_pods(component: str) -> list[str]:
    names = [pod["metadata"]["name"] for pod in component_pods(component) if pod_ready(pod)]
    assert names, f"no {component} pod is Ready"
    return names


def _wait_pods(component: str, count: int, rollout: str | None = "") -> list[str]:
    """Until the component has `count` pods, all Ready and none going; with `rollout`, all
    carrying that rollout annotation (None: none carrying any; "": either)."""

    def settled() -> list[str]:
        pods = component_pods(component)
        marks = {pod["metadata"].get("annotations", {}).get("rollout") for pod in pods}
        rolled = rollout == "" or marks == {rollout}
        if len(pods) == count and all(pod_ready(pod) for pod in pods) and rolled:
            return [pod["metadata"]["name"] for pod in pods]
        return []

    return _poll(settled, what=f"{count} {component} pods Ready", timeout_seconds=POD_SECONDS)


def _force_delete(component: str, pod: str) -> float:
    """Deletes the pod at once (its containers are killed within seconds, its requests and
    deliveries in flight cut); the seconds until its replacement is Ready."""
    count = len([pod for pod in component_pods(component) if staying(pod)])
    started = time.monotonic()
    say(f"deleting {pod} at {time.time():.1f}")  # to match the client's attempts
    kubectl("-n", release.NAMESPACE, "delete", "pod", pod, "--grace-period=0", "--force")
    names = _wait_pods(component, count)
    assert pod not in names
    return round(time.monotonic() - started, 1)


def _helm_upgrade(values: dict[str, str]) -> None:
    """`helm upgrade` as `up` runs it (values-dev.yaml, `values`, --wait)."""
    command = [str(binaries.helm()), *release.helm_args(values)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=HELM_SECONDS,
                            check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr


def _poll(probe: Callable[[], T], *, what: str, timeout_seconds: float) -> T:
    """Calls `probe` every second until it returns something truthy (kubectl is a process per
    call: not faster)."""
    deadline = time.monotonic() + timeout_seconds
    while not (result := probe()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout_seconds} s"
        time.sleep(1)
    return result
