"""NetworkPolicies enforced on the local cluster (kube-router's firewall, installed by `up`)
with the release as `up` installs it:

- a pod without the release's labels reaches no port of either app or of their sidecars, nor
  the API's Service; a pod of the release reaches the API and nothing else; a pod that a
  test-only policy lets in reaches every port the others could not, so those ports do listen on
  the pods' addresses and it is the policies that turn the others away;
- a policy denying all ingress blocks a client in a namespace of its own;
- the placer's gRPC callback server, called at its pod's address from another pod, refuses a
  delivery without the app token (or with a wrong one) and places nothing, and takes the same
  delivery with the token of the release's Secret.

Each client is a pod that runs a script and prints what it saw as JSON: a pod that never ran
fails the test with its phase and output, a connect that was refused or timed out is a result.
With the cluster suite; alone: `./run_tests.sh -m kind tests/e2e/test_cluster_network.py`.
"""

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cluster import network_policy, release
from cluster.docker import Engine
from tests.e2e.cluster_support import (
    RELEASE_LABELS,
    api_image,
    kubectl,
    port_forward,
    release_pods,
    restricted_pod,
    run_client_pod,
)
from tests.factories import accepted_order
from tests.telemetry import scrape, value

pytestmark = [pytest.mark.kind, pytest.mark.timeout(3600)]

# A pod of the orders namespace that no policy of the release names.
OUTSIDER_LABELS = {"netpol-check": "outsider"}
# A pod that the test-only policy (PROBE_POLICY) lets into both apps' pods on every port.
PROBE_LABELS = {"netpol-check": "probe"}
PROBE_POLICY = "netpol-check-probe"
# daprd's HTTP and gRPC APIs listen on the pod's loopback only (Dapr's injector default,
# `dapr.io/sidecar-listen-addresses`): no pod reaches them, whatever the policies say.
LOOPBACK_ONLY = ("daprd/dapr-http", "daprd/dapr-grpc")
API_HTTP = "api/http"  # the API's own port on its pod
API_SERVICE = "svc/api"
SETTLE_SECONDS = 60  # for the agent to apply the policies to a new pod, and a new policy
OUTSIDER_SWEEPS = 5  # an outsider's connects, a second apart: any one that connects counts

# Connects to each target (TARGETS: {name: [host, port]}), each with a timeout, and prints
# {"settled": ..., "results": {name: "open" | "refused" | "timeout" | the error}}. With SETTLE
# ([name, "open" | "closed"]) it first waits until that target is so (the agent has applied the
# policies for this pod), then sweeps once; without, it sweeps SWEEPS times, a second apart,
# and a target counts as open if any sweep connected.
REACH = """
import json, os, socket, time
def attempt(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        return "open"
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "timeout"
    except OSError as error:
        return type(error).__name__ + ": " + str(error)
targets = json.loads(os.environ["TARGETS"])
def sweep():
    return {name: attempt(host, port) for name, (host, port) in targets.items()}
settled = None
if os.environ.get("SETTLE"):
    name, state = json.loads(os.environ["SETTLE"])
    deadline = time.monotonic() + float(os.environ["SETTLE_SECONDS"])
    settled = False
    while not settled and time.monotonic() < deadline:
        settled = (attempt(*targets[name]) == "open") == (state == "open")
        if not settled:
            time.sleep(1)
    results = sweep()
else:
    results = sweep()
    for _ in range(int(os.environ["SWEEPS"]) - 1):
        time.sleep(1)
        results = {name: "open" if "open" in (old, new) else new
                   for (name, old), new in zip(results.items(), sweep().values())}
print(json.dumps({"settled": settled, "results": results}))
"""


def reach(
    labels: dict[str, str],
    targets: dict[str, tuple[str, int]],
    settle: tuple[str, str] | None = None,
) -> dict[str, str]:
    """What a client pod with `labels` reaches of `targets` (see REACH)."""
    env = {
        "TARGETS": json.dumps(targets),
        "SWEEPS": str(OUTSIDER_SWEEPS),
        "SETTLE": json.dumps(settle) if settle else "",
        "SETTLE_SECONDS": str(SETTLE_SECONDS),
    }
    report = client_report(REACH, labels, [{"name": k, "value": v} for k, v in env.items()])
    assert report["settled"] is (True if settle else None), report
    assert report["results"].keys() == targets.keys(), report
    return dict(report["results"])


def client_report(script: str, labels: dict[str, str], env: list[dict[str, Any]]) -> Any:
    """The JSON a client pod printed; fails unless it ran to its end."""
    phase, output = run_client_pod(script, labels=labels, env=env)
    assert phase == "Succeeded", f"the client pod did not run to its end ({phase}): {output}"
    return json.loads(output.strip().splitlines()[-1])


def opened(results: dict[str, str]) -> set[str]:
    return {name for name, result in results.items() if result == "open"}


def pod_ports(pod: dict[str, Any]) -> dict[str, int]:
    """Every port a pod of the release serves, as `<container>/<name>`: those its containers
    declare, those they are probed on, and the gRPC port the placer's sidecar delivers to."""
    ports: dict[str, int] = {}
    for container in pod["spec"]["containers"]:
        name = container["name"]
        for port in container.get("ports", []):
            ports[f"{name}/{port['name']}"] = port["containerPort"]
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            port = container.get(probe, {}).get("httpGet", {}).get("port")
            if isinstance(port, int) and port not in ports.values():
                ports[f"{name}/probe-{port}"] = port
    app_port = pod["metadata"]["annotations"].get("dapr.io/app-port")
    if app_port is not None and int(app_port) not in ports.values():
        ports[f"{pod['metadata']['labels']['app.kubernetes.io/component']}/app"] = int(app_port)
    return ports


def the_pod(component: str) -> dict[str, Any]:
    [pod] = [p for p in release_pods()
             if p["metadata"]["labels"]["app.kubernetes.io/component"] == component]  # fmt: skip
    return pod


@pytest.fixture(scope="module")
def targets(cluster: Engine) -> dict[str, tuple[str, int]]:
    """Every port of both apps' pods at their addresses, and the API's Service by name."""
    found: dict[str, tuple[str, int]] = {}
    for component in ("api", "placer"):
        pod = the_pod(component)
        for name, port in pod_ports(pod).items():
            prefix = "" if name.startswith(f"{component}/") else f"{component}:"
            found[prefix + name] = (pod["status"]["podIP"], port)
    found[API_SERVICE] = (f"{release.RELEASE}-api.{release.NAMESPACE}.svc.cluster.local", 80)
    assert found[API_HTTP][1] == 8000 and "placer/app" in found  # the ports the tests name
    return found


@pytest.fixture(scope="module")
def probe_policy(cluster: Engine) -> Iterator[None]:
    """A test-only policy that lets PROBE_LABELS pods into both apps' pods on every port
    (policies add up: the release's own stay as they are); removed afterwards."""
    apps = {"key": "app.kubernetes.io/component", "operator": "In", "values": ["api", "placer"]}
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": PROBE_POLICY},
        "spec": {
            "podSelector": {
                "matchLabels": {"app.kubernetes.io/instance": release.RELEASE},
                "matchExpressions": [apps],
            },
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": PROBE_LABELS}}]}],
        },
    }
    kubectl("-n", release.NAMESPACE, "apply", "-f", "-", stdin=json.dumps(policy))
    try:
        yield
    finally:
        kubectl("-n", release.NAMESPACE, "delete", "networkpolicy", PROBE_POLICY,
                "--ignore-not-found")  # fmt: skip


def test_the_agent_runs_on_the_node(cluster: Engine) -> None:
    daemonset = json.loads(kubectl("-n", network_policy.NAMESPACE, "get", "daemonset",
                                   network_policy.NAME, "-o", "json"))  # fmt: skip
    status = daemonset["status"]
    assert status["desiredNumberScheduled"] == status["numberReady"] == 1
    policies = json.loads(kubectl("-n", release.NAMESPACE, "get", "networkpolicy", "-o", "json"))
    names = {item["metadata"]["name"] for item in policies["items"]}
    assert {f"{release.RELEASE}-api", f"{release.RELEASE}-placer"} <= names


def test_a_pod_without_the_release_labels_reaches_neither_app_nor_a_sidecar(
    targets: dict[str, tuple[str, int]],
) -> None:
    results = reach(OUTSIDER_LABELS, targets)
    assert opened(results) == set(), results


def test_a_pod_of_the_release_reaches_the_api_and_nothing_else(
    targets: dict[str, tuple[str, int]],
) -> None:
    """The positive control: the policies let the release's pods reach the API's port (by its
    address and through its Service), and only that."""
    results = reach(RELEASE_LABELS, targets, settle=(API_HTTP, "open"))
    assert opened(results) == {API_HTTP, API_SERVICE}, results


def test_the_ports_closed_to_others_listen_for_a_pod_the_policies_let_in(
    targets: dict[str, tuple[str, int]], probe_policy: None
) -> None:
    """So the refusals above come from the policies, not from closed ports: let in by the
    test-only policy, a pod reaches every port but daprd's APIs, which listen on the pods'
    loopback only."""
    results = reach(PROBE_LABELS, targets, settle=(API_HTTP, "open"))
    loopback = {name for name in targets if name.endswith(LOOPBACK_ONLY)}
    assert len(loopback) == 4, targets  # both apps' sidecars
    assert opened(results) == targets.keys() - loopback, results
    assert {results[name] for name in loopback} == {"refused"}, results


def test_a_policy_denying_all_ingress_blocks_a_client(cluster: Engine) -> None:
    """The agent on its own, without the chart: in a namespace of their own, two servers, one
    behind a policy that selects it and allows nothing in."""
    namespace = f"netpol-check-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", namespace)
    try:
        servers = [_server(role, api_image()) for role in ("open", "guarded")]
        listed = {"apiVersion": "v1", "kind": "List", "items": [*servers, _deny_ingress()]}
        kubectl("-n", namespace, "apply", "-f", "-", stdin=json.dumps(listed))
        kubectl("-n", namespace, "wait", "--for=condition=Ready", "pod", "--all",
                "--timeout=180s")  # fmt: skip
        ip = "jsonpath={.status.podIP}"
        servers_at = {role: (kubectl("-n", namespace, "get", "pod", role, "-o", ip), 8080)
                      for role in ("open", "guarded")}  # fmt: skip
        results = reach(OUTSIDER_LABELS, servers_at, settle=("guarded", "closed"))
        assert results == {"open": "open", "guarded": "refused"}
    finally:
        kubectl("delete", "namespace", namespace, "--wait=false")


def _server(role: str, image: str) -> dict[str, Any]:
    """A pod answering HTTP on 8080 (Python's http.server in the API's image)."""
    container = {
        "name": "server",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "http.server", "8080", "--directory", "/tmp"],
        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 2},
    }
    return restricted_pod(role, {"role": role}, container)


def _deny_ingress() -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "deny-ingress"},
        "spec": {"podSelector": {"matchLabels": {"role": "guarded"}}, "policyTypes": ["Ingress"]},
    }


# Calls the placer's gRPC callback server (PLACER: host:port) as its sidecar does, once the
# policies let this pod in: a delivery of ORDER on TOPIC without a token, with a wrong one, a
# bulk delivery without one, then the delivery with APP_TOKEN. Prints each call's gRPC code
# (and the placer's answer when OK).
DELIVER = """
import json, os, socket, time
import grpc
from dapr.proto.runtime.v1 import appcallback_pb2 as callback
from dapr.proto.runtime.v1 import appcallback_pb2_grpc as stubs
host, port = os.environ["PLACER"].rsplit(":", 1)
deadline = time.monotonic() + float(os.environ["SETTLE_SECONDS"])
while True:
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
        break
    except OSError as error:
        if time.monotonic() > deadline:
            print(json.dumps({"connected": False, "error": repr(error)}))
            raise SystemExit(0)
        time.sleep(1)
order = os.environ["ORDER"].encode()
event = callback.TopicEventRequest(id="netpol-check", topic=os.environ["TOPIC"], data=order,
                                   data_content_type="application/json", pubsub_name="pubsub")
entry = callback.TopicEventBulkRequestEntry(entry_id="1", bytes=order,
                                            content_type="application/json")
bulk = callback.TopicEventBulkRequest(id="netpol-check", topic=os.environ["TOPIC"],
                                      entries=[entry], pubsub_name="pubsub")
statuses = callback.TopicEventResponse.TopicEventResponseStatus
with grpc.insecure_channel(os.environ["PLACER"]) as channel:
    stub = stubs.AppCallbackStub(channel)
    def call(method, request, token):
        metadata = [] if token is None else [("dapr-api-token", token)]
        try:
            answer = method(request, metadata=metadata, timeout=20)
        except grpc.RpcError as error:
            return {"code": error.code().name, "details": error.details()}
        status = getattr(answer, "status", None)
        return {"code": "OK", "status": None if status is None else statuses.Name(status)}
    calls = {
        "no token": call(stub.OnTopicEvent, event, None),
        "wrong token": call(stub.OnTopicEvent, event, "not-the-token"),
        "bulk, no token": call(stub.OnBulkTopicEvent, bulk, None),
        "app token": call(stub.OnTopicEvent, event, os.environ["APP_TOKEN"]),
    }
print(json.dumps({"connected": True, "calls": calls}))
"""
ATTEMPTS = "orders_placement_attempts_total"  # by outcome: "invalid" for an order not stored


def test_the_placer_refuses_a_delivery_without_the_app_token(
    targets: dict[str, tuple[str, int]], probe_policy: None, exchange_url: str
) -> None:
    """From another pod, at the placer pod's address (let in by the test-only policy): an
    order delivered without the app token, or with a wrong one, is refused as unauthenticated
    and reaches no placement code; with the token of the release's Secret, the same delivery is
    taken (and dropped: that order is not in the store, so nothing is placed either way)."""
    placer = the_pod("placer")
    [container] = [c for c in placer["spec"]["containers"] if c["name"] == "placer"]
    topic = next(e["value"] for e in container["env"] if e["name"] == "ORDERS_TOPIC")
    token_secret = placer["metadata"]["annotations"]["dapr.io/app-token-secret"]
    order = accepted_order()
    host, port = targets["placer/app"]
    env = [
        {"name": "PLACER", "value": f"{host}:{port}"},
        {"name": "TOPIC", "value": topic},
        {"name": "ORDER", "value": order.model_dump_json()},
        {"name": "SETTLE_SECONDS", "value": str(SETTLE_SECONDS)},
        {"name": "APP_TOKEN",
         "valueFrom": {"secretKeyRef": {"name": token_secret, "key": "token"}}},
    ]  # fmt: skip
    name = placer["metadata"]["name"]
    with port_forward(f"pod/{name}", 9464, "/metrics") as metrics_url:
        before = value(scrape(f"{metrics_url}/metrics"), ATTEMPTS, outcome="invalid")
        report = client_report(DELIVER, PROBE_LABELS, env)
        after = value(scrape(f"{metrics_url}/metrics"), ATTEMPTS, outcome="invalid")

    assert report["connected"] is True, report
    calls = report["calls"]
    for refused in ("no token", "wrong token", "bulk, no token"):
        assert calls[refused]["code"] == "UNAUTHENTICATED", calls
    assert calls["app token"] == {"code": "OK", "status": "DROP"}, calls
    # Only the call with the token reached the placement code (one delivery counted).
    assert after - before == 1
    answer = httpx.get(f"{exchange_url}/orders/{order.id}", timeout=10)
    assert answer.status_code == 404, answer.text
