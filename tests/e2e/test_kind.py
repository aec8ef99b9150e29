"""The chart on a real cluster: kind, Dapr's control plane, our images, orders placed.

Needs Docker (an engine, not just the client), kind and kubectl; skipped with the reason
otherwise. Helm is built by the project's scripts (devstack.binaries.helm).
"""

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from core.config import PROJECT_ROOT
from devstack import binaries
from devstack.processes import free_port
from tests.factories import limit_order_body
from tests.polling import wait_for
from tests.telemetry import scrape, value

CHART = PROJECT_ROOT / "charts" / "order-service"
KIND_CONFIG = Path(__file__).with_name("kind-config.yaml")
DAPR_CHART_VERSION = "1.18.1"
ORDERS = 20


def _missing_tools() -> str | None:
    if shutil.which("docker") is None:
        return "docker is not installed"
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        return "no Docker engine is running (the docker client cannot reach one)"
    if shutil.which("kubectl") is None:
        return "kubectl is not installed"
    return None


pytestmark = [pytest.mark.e2e]
MISSING = _missing_tools()
if MISSING:
    pytestmark.append(pytest.mark.skip(reason=f"kind end-to-end test: {MISSING}"))


def run(*command: str, timeout: float = 600) -> str:
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, check=False, cwd=PROJECT_ROOT
    )
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    name = f"order-service-e2e-{uuid.uuid4().hex[:6]}"
    kind = str(binaries.kind())
    run(kind, "create", "cluster", "--config", str(KIND_CONFIG), "--name", name, "--wait", "120s")
    try:
        yield name
    finally:
        run(kind, "delete", "cluster", "--name", name)


@pytest.fixture(scope="module")
def release(cluster: str) -> Iterator[str]:
    helm = str(binaries.helm())
    context = f"kind-{cluster}"
    run(helm, "repo", "add", "dapr", "https://dapr.github.io/helm-charts", "--force-update")
    run(helm, "--kube-context", context, "upgrade", "--install", "dapr", "dapr/dapr",
        "--version", DAPR_CHART_VERSION, "--namespace", "dapr-system", "--create-namespace",
        "--wait", "--timeout", "10m")  # fmt: skip
    for app in ("api", "placer"):
        image = f"order-service/order-{app}:e2e"
        run("docker", "build", "--target", app, "-t", image, ".", timeout=1200)
        run(str(binaries.kind()), "load", "docker-image", image, "--name", cluster)
    run(helm, "--kube-context", context, "upgrade", "--install", "order-service", str(CHART),
        "-f", str(CHART / "values-dev.yaml"), "--set", "image.tag=e2e",
        "--set", "api.autoscaling.enabled=true", "--set", "placer.autoscaling.enabled=true",
        "--set", "api.autoscaling.minReplicas=1", "--set", "placer.autoscaling.minReplicas=1",
        "--set", "placer.env.EXCHANGE_FAILURE_RATE=0.1",
        "--wait", "--timeout", "10m")  # fmt: skip
    yield context


@contextmanager
def port_forward(context: str, service: str, remote_port: int, ready_path: str) -> Iterator[str]:
    """A local URL for a Service's port, once `ready_path` answers 200 through it."""
    port = free_port()
    forward = subprocess.Popen(
        ["kubectl", "--context", context, "port-forward", f"svc/{service}",
         f"{port}:{remote_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _ready(url + ready_path), what=f"{service} reachable", timeout_seconds=120)
        yield url
    finally:
        forward.terminate()
        forward.wait(timeout=30)


@pytest.fixture(scope="module")
def api_url(release: str) -> Iterator[str]:
    with port_forward(release, "order-service-api", 80, "/health/ready") as url:
        yield url


def _ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_orders_are_placed_on_the_cluster(api_url: str) -> None:
    with httpx.Client(base_url=api_url, timeout=10) as client:
        ids = []
        for quantity in range(1, ORDERS + 1):
            response = client.post("/orders", json=limit_order_body(quantity=quantity))
            assert response.status_code == 201
            ids.append(response.json()["id"])

        def all_placed() -> bool:
            return all(client.get(f"/orders/{i}").json()["status"] == "placed" for i in ids)

        wait_for(all_placed, what="orders placed on the cluster", timeout_seconds=180)


def test_both_apps_serve_their_metrics(release: str, api_url: str) -> None:
    # After the orders above (the HorizontalPodAutoscalers may have added pods: each pod
    # counts its own, so only "some" can be asserted through one Service).
    with port_forward(release, "order-service-api", 9464, "/metrics") as url:
        assert value(scrape(f"{url}/metrics"), "orders_accepted_total") > 0
    with port_forward(release, "order-service-placer-metrics", 9464, "/metrics") as url:
        assert value(scrape(f"{url}/metrics"), "orders_placed_total") > 0


def test_autoscalers_exist_and_resolve_their_targets(release: str) -> None:
    deadline = time.monotonic() + 120
    while True:
        autoscalers = json.loads(run("kubectl", "--context", release, "get", "hpa", "-o", "json"))
        targets = {item["spec"]["scaleTargetRef"]["name"] for item in autoscalers["items"]}
        able = [
            condition["status"] == "True"
            for item in autoscalers["items"]
            for condition in item.get("status", {}).get("conditions", [])
            if condition["type"] == "AbleToScale"
        ]
        if len(able) == 2 and all(able):
            break
        assert time.monotonic() < deadline, autoscalers
        time.sleep(5)
    assert targets == {"order-service-api", "order-service-placer"}
