"""The chart's `helm test` hook (templates/tests/place-order.yaml): a pod from the API's image
that places one limit order through the API's Service and waits until it is placed. Rendered
in every profile, restricted, let in by the API's NetworkPolicy, packaged; its script run
against a real API and placer (and against stand-ins for the answers that make it fail)."""

import functools
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.domain import OrderRequest
from devstack.config import StateStoreKind
from devstack.processes import free_port
from tests.chart.network_policy import Endpoint, allows
from tests.chart.pod_security import restricted_violations
from tests.chart.rendering import (
    CHART,
    KUBERNETES_VERSION,
    PROFILES,
    RELEASE,
    helm,
    of_kind,
    render,
)
from tests.integration.stack_fixtures import running_stack

NAME = f"{RELEASE}-test-place-order"
API_KEYS = "first-key,second-key"
SCRIPT_TIMEOUT_SECONDS = 60
HELM_DEFAULT_TIMEOUT_SECONDS = 300  # `helm test --timeout`


def hook(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    [pod] = [m for m in of_kind(manifests, "Pod") if m["metadata"]["name"] == NAME]
    return pod


def named(manifests: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [m for m in of_kind(manifests, kind) if m["metadata"]["name"] == name]
    return found


def container_of(pod: dict[str, Any]) -> dict[str, Any]:
    [container] = pod["spec"]["containers"]
    return dict(container)


@pytest.mark.parametrize("profile", list(PROFILES))
def test_it_is_a_test_hook_from_the_apis_image_that_passes_restricted(profile: str) -> None:
    manifests = render(*PROFILES[profile])
    pod = hook(manifests)
    annotations = pod["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "test"
    # Replaced at the next run, kept until then for `helm test --logs`.
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation"
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["activeDeadlineSeconds"] > 240  # its own bound, and more
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert restricted_violations(pod["spec"]) == []
    api = named(manifests, "Deployment", f"{RELEASE}-api")["spec"]["template"]
    assert container_of(pod)["image"] == api["spec"]["containers"][0]["image"]
    assert "dapr.io/enabled" not in pod["metadata"].get("annotations", {})
    assert container_of(pod)["resources"]["requests"]


def test_it_calls_the_apis_service() -> None:
    manifests = render()
    command = container_of(hook(manifests))["command"]
    assert command[:2] == ["python", "-c"]
    url, placed_within = command[3:]
    service = named(manifests, "Service", f"{RELEASE}-api")
    [http] = [port for port in service["spec"]["ports"] if port["name"] == "http"]
    assert url == f"http://{service['metadata']['name']}:{http['port']}"
    assert placed_within == "240"


def test_the_apis_network_policy_lets_it_in_and_nothing_else_selects_it() -> None:
    manifests = render(*PROFILES["dev"], "--set", "networkPolicy.enabled=true")
    pod = hook(manifests)
    labels = pod["metadata"]["labels"]
    api_policy = named(manifests, "NetworkPolicy", f"{RELEASE}-api")
    assert allows(api_policy, "ingress", Endpoint("10.244.0.9", "orders", labels), 8000)
    # No policy limits its own traffic, and no Service, budget or workload takes it for theirs.
    for policy in of_kind(manifests, "NetworkPolicy"):
        assert not policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    for service in of_kind(manifests, "Service"):
        assert not service["spec"]["selector"].items() <= labels.items()
    for owner in of_kind(manifests, "Deployment") + of_kind(manifests, "PodDisruptionBudget"):
        assert not owner["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_it_sends_a_client_api_key_when_the_api_needs_one() -> None:
    container = container_of(hook(render("--set", "api.apiKeysSecret=order-api-keys")))
    [variable] = container["env"]
    reference = {"name": "order-api-keys", "key": "api-keys"}
    assert variable == {"name": "API_KEYS", "valueFrom": {"secretKeyRef": reference}}
    assert "env" not in container_of(hook(render()))


def test_it_waits_out_one_redelivery_within_helms_default_timeout() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    pubsub = values["pubsub"]
    redelivered_within = (
        int(pubsub["processingTimeout"].removesuffix("s")) + pubsub["redeliverIntervalSeconds"]
    )
    placed_within = values["helmTest"]["placedWithinSeconds"]
    assert placed_within > redelivered_within
    assert hook(render())["spec"]["activeDeadlineSeconds"] < HELM_DEFAULT_TIMEOUT_SECONDS


def test_it_can_be_left_out_and_given_more_time() -> None:
    assert [m for m in of_kind(render("--set", "helmTest.enabled=false"), "Pod")] == []
    pod = hook(render("--set", "helmTest.placedWithinSeconds=600"))
    assert container_of(pod)["command"][-1] == "600"
    assert pod["spec"]["activeDeadlineSeconds"] == 630


def test_it_is_packaged(tmp_path: Path) -> None:
    # Another chart's habit, a tests/ folder at the root, is left out; templates/tests/ is not.
    chart = tmp_path / "order-service"
    shutil.copytree(CHART, chart)
    (chart / "tests").mkdir()
    (chart / "tests" / "notes.txt").write_text("not for the archive\n")
    result = helm("package", str(chart), "--destination", str(tmp_path))
    assert result.returncode == 0, result.stderr
    [archive] = tmp_path.glob("order-service-*.tgz")
    with tarfile.open(archive) as packaged:
        names = packaged.getnames()
    assert "order-service/templates/tests/place-order.yaml" in names
    assert not [name for name in names if name.startswith("order-service/tests/")]


@pytest.mark.parametrize(
    ("value", "message"),
    [("helmTest.placedWithinSeconds=0", "/helmTest/placedWithinSeconds"),
     ("helmTest.enabled=yes", "/helmTest/enabled")],
)  # fmt: skip
def test_values_schema_rejects_bad_test_values(value: str, message: str) -> None:
    result = helm(
        "template", RELEASE, str(CHART), "--kube-version", KUBERNETES_VERSION, "--set", value
    )
    assert result.returncode != 0
    assert message in result.stderr


# The script


@functools.cache
def hook_script() -> str:
    script: str = container_of(hook(render()))["command"][2]
    return script


def run_hook(url: str, placed_within: str = "30", env: dict[str, str] | None = None) -> (
    subprocess.CompletedProcess[str]
):  # fmt: skip
    """The hook's script as the pod runs it (`python -c <script> <url> <seconds>`), here."""
    return subprocess.run(
        [sys.executable, "-c", hook_script(), url, placed_within], capture_output=True, text=True,
        env={**os.environ, **(env or {})}, timeout=SCRIPT_TIMEOUT_SECONDS, check=False,
    )  # fmt: skip


def test_the_script_places_an_order_on_a_real_api_and_placer(tmp_path: Path) -> None:
    settings = {"EXCHANGE_FAILURE_RATE": "0", "EXCHANGE_LATENCY_SECONDS": "0.05",
                "API_KEYS": API_KEYS}  # fmt: skip
    with running_stack(tmp_path, StateStoreKind.POSTGRES, app_env=settings) as stack:
        result = run_hook(stack.stack.api.url, env={"API_KEYS": API_KEYS})
        assert result.returncode == 0, result.stdout + result.stderr
        accepted, placed = result.stdout.splitlines()
        order_id = placed.split()[1]
        assert accepted.startswith(f"order {order_id} accepted")
        assert placed == f"order {order_id} placed"
        answer = stack.client.get(f"/orders/{order_id}", headers={"X-API-Key": "second-key"})
        assert answer.json()["status"] == "placed"
        # Without the key the API refuses it: the script sent one.
        refused = run_hook(stack.stack.api.url)
        assert refused.returncode == 1
        assert "POST /orders answered 401" in refused.stderr


# What a stand-in API answers to GET /orders/{id}, call after call (the last one repeats).
Answers = list[tuple[int, dict[str, Any]]]


@contextmanager
def stand_in_api(
    answers: Answers, post_status: int = 201, port: int = 0
) -> Iterator[tuple[str, list[Any]]]:
    """An API on 127.0.0.1 (`port`, or any free one) that answers the POST with `post_status`
    and then the GETs with `answers`; yields its URL and the bodies it was sent."""
    posted: list[Any] = []
    pending = list(answers)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            posted.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self._answer(post_status, {"id": ORDER_ID})

        def do_GET(self) -> None:
            self._answer(*(pending.pop(0) if len(pending) > 1 else pending[0]))

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            encoded = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(encoded)))
            self.end_headers()
            self.wfile.write(encoded)

        def log_message(self, *_args: Any) -> None:
            pass  # the test reads the script's output, not the server's

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", posted
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


ORDER_ID = "0b7e8a4c-0000-4000-8000-000000000001"


def order(status: str, reason: str | None = None) -> tuple[int, dict[str, Any]]:
    return 200, {"id": ORDER_ID, "status": status, "failure_reason": reason}


def test_the_script_posts_one_valid_limit_order_and_waits_until_placed() -> None:
    answers = [order("accepted"), (503, {"detail": "busy"}), order("accepted"), order("placed")]
    with stand_in_api(answers) as (url, posted):
        result = run_hook(url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"order {ORDER_ID} placed"
    [body] = posted
    assert OrderRequest.model_validate(body).type == "limit"


@pytest.mark.parametrize(
    ("answers", "post_status", "expected"),
    [
        ([order("failed", "exchange refused")], 201, f"order {ORDER_ID} failed: exchange refused"),
        ([order("rejected")], 201, f"order {ORDER_ID} rejected"),
        ([order("accepted")], 201, f"order {ORDER_ID} not placed within 2 s"),
        ([order("placed")], 500, "POST /orders answered 500"),
    ],
    ids=["failed", "rejected", "never-placed", "not-accepted"],
)
def test_the_script_fails_unless_its_order_is_placed(
    answers: Answers, post_status: int, expected: str
) -> None:
    with stand_in_api(answers, post_status) as (url, posted):
        result = run_hook(url, placed_within="2")
    assert result.returncode == 1
    assert expected in result.stderr
    assert len(posted) == 1  # one order, never posted again


def test_the_script_repeats_a_refused_post_until_the_api_listens() -> None:
    """As when the pod's address is not yet among the NetworkPolicy's allowed sources."""
    port = free_port()
    script = [sys.executable, "-c", hook_script(), f"http://127.0.0.1:{port}", "30"]
    with subprocess.Popen(
        script, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as hook:
        try:
            time.sleep(2)  # refused meanwhile
            with stand_in_api([order("placed")], port=port) as (_url, posted):
                stdout, stderr = hook.communicate(timeout=SCRIPT_TIMEOUT_SECONDS)
        finally:
            hook.kill()
    assert hook.returncode == 0, stderr
    assert stdout.splitlines()[-1] == f"order {ORDER_ID} placed"
    assert len(posted) == 1


def test_the_script_fails_when_the_api_cannot_be_reached() -> None:
    with stand_in_api([order("placed")]) as (url, _posted):
        pass  # stopped: nothing listens there any more
    result = run_hook(url, placed_within="2")  # refused POSTs are repeated for that long
    assert result.returncode == 1
    assert "POST /orders failed" in result.stderr
