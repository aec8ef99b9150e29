"""What the cluster tests share: kubectl with the kubeconfig `up` wrote, port-forwards to the
release's Services, the release's app pods, and the shape of an accepted order."""

import json
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from cluster import dapr, kind, release
from devstack.processes import ProcessGroup, free_port, http_ok, wait_until
from tests.polling import wait_for

APP_COMPONENTS = ("api", "placer")


def kubectl(*args: str, stdin: str | None = None) -> str:
    result = kubectl_result(*args, stdin=stdin)
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result.stdout


def kubectl_result(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The host's kubectl with the kubeconfig `up` wrote (helm used it to install Dapr)."""
    command = [str(kind.kubectl()), "--kubeconfig", str(dapr.KUBECONFIG), *args]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=240,
                          check=False)  # fmt: skip


def release_pods() -> list[dict[str, Any]]:
    selector = f"app.kubernetes.io/instance={release.RELEASE}"
    document = json.loads(kubectl("-n", release.NAMESPACE, "get", "pods", "-l", selector,
                                   "-o", "json"))  # fmt: skip
    return [
        pod
        for pod in document["items"]
        if pod["metadata"]["labels"].get("app.kubernetes.io/component") in APP_COMPONENTS
        and staying(pod)
    ]


def component_pods(component: str) -> list[dict[str, Any]]:
    """The pods of one app of the release, those on their way out included."""
    selector = _component_selector(component)
    document = json.loads(kubectl("-n", release.NAMESPACE, "get", "pods", "-l", selector,
                                  "-o", "json"))  # fmt: skip
    pods: list[dict[str, Any]] = document["items"]
    return pods


def log_lines(component: str) -> list[str]:
    """Every line of the logs of `component`'s containers, in every pod of the release that
    runs it, each prefixed with its pod."""
    # With a selector, kubectl shows the last 10 lines of each pod unless told otherwise.
    logs = kubectl("-n", release.NAMESPACE, "logs", "-l", _component_selector(component),
                   "-c", component, "--prefix", "--tail=-1")  # fmt: skip
    return logs.splitlines()


def _component_selector(component: str) -> str:
    return f"app.kubernetes.io/instance={release.RELEASE},app.kubernetes.io/component={component}"


def staying(pod: dict[str, Any]) -> bool:
    """Not on its way out (deleted pods are listed until their grace period ends)."""
    return pod["metadata"].get("deletionTimestamp") is None


def pod_ready(pod: dict[str, Any]) -> bool:
    """Staying, and every container Ready."""
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return staying(pod) and bool(statuses) and all(status["ready"] for status in statuses)


def _settled(component: str) -> bool:
    """The component's Deployment has exactly the pods it wants, all of the current template,
    all Ready, none on its way out."""
    name = f"{release.RELEASE}-{component}"
    deployment = json.loads(kubectl("-n", release.NAMESPACE, "get", "deployment", name,
                                    "-o", "json"))  # fmt: skip
    wanted: int = deployment["spec"]["replicas"]
    status: dict[str, Any] = deployment["status"]
    generation: int = deployment["metadata"]["generation"]
    pods = component_pods(component)
    return (
        status.get("observedGeneration") == generation
        and status.get("updatedReplicas") == wanted
        and len(pods) == wanted
        and all(pod_ready(pod) for pod in pods)
    )


def wait_release_settled(timeout_seconds: float = 420) -> None:
    """Until both apps are settled: what a test that counts or disrupts pods starts from. The
    pods of a scale-in or a rollout take their grace period (a preStop pause, the sidecar's
    shutdown) to go, and are still listed meanwhile."""
    wait_for(lambda: all(_settled(component) for component in APP_COMPONENTS),
             what="both apps' pods settled", timeout_seconds=timeout_seconds)  # fmt: skip


@contextmanager
def port_forward(target: str, remote_port: int, ready_path: str) -> Iterator[str]:
    """A local URL for `target`'s port, once `ready_path` answers through it."""
    port = free_port()
    command = [str(kind.kubectl()), "--kubeconfig", str(dapr.KUBECONFIG), "-n",
               release.NAMESPACE, "port-forward", target, f"{port}:{remote_port}"]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with ProcessGroup() as group:
        process = group.start(f"port-forward-{port}", command)
        wait_until(process, http_ok(url + ready_path), what=f"forwarding {target}",
                   timeout_seconds=60)  # fmt: skip
        yield url


def assert_accepted(answer: dict[str, Any], body: dict[str, Any]) -> None:
    assert set(answer) == {*body, "id", "created_at", "status", "failure_reason"}
    assert {key: answer[key] for key in body if key != "limit_price"} == {
        key: value for key, value in body.items() if key != "limit_price"
    }
    assert Decimal(answer["limit_price"]) == Decimal(str(body["limit_price"]))
    assert answer["status"] == "accepted"
    assert answer["failure_reason"] is None
    uuid.UUID(answer["id"])


# Labels that the release's NetworkPolicies let reach the API: those of the release's own pods
# (no component label, so no Service or PodDisruptionBudget selects the client).
RELEASE_LABELS = {
    "app.kubernetes.io/name": release.RELEASE,
    "app.kubernetes.io/instance": release.RELEASE,
}


def run_client_pod(
    script: str,
    *,
    labels: dict[str, str],
    timeout_seconds: float = 600,
    env: Sequence[dict[str, Any]] = (),
) -> tuple[str, str]:
    """Runs `script` with the API image's Python in a pod of the release's namespace, as the
    restricted profile allows (non-root, no capabilities, read-only root); waits until it ends.
    `env`: the container's environment (Kubernetes EnvVar objects).
    Returns its phase (Succeeded or Failed) and its output; the pod is deleted afterwards."""
    name = f"client-{uuid.uuid4().hex[:8]}"
    kubectl("-n", release.NAMESPACE, "apply", "-f", "-",
            stdin=json.dumps(_client_pod(name, script, labels, env)))  # fmt: skip
    try:
        phase = _wait_until_ended(name, timeout_seconds)
        return phase, kubectl("-n", release.NAMESPACE, "logs", name)
    finally:
        kubectl("-n", release.NAMESPACE, "delete", "pod", name, "--wait=false")


def api_image() -> str:
    """The image the release's API Deployment runs (built here or pulled)."""
    return kubectl("-n", release.NAMESPACE, "get", "deployment", f"{release.RELEASE}-api",
                   "-o", "jsonpath={.spec.template.spec.containers[0].image}")  # fmt: skip


def _client_pod(
    name: str, script: str, labels: dict[str, str], env: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    container = {
        "name": "client",
        "image": api_image(),
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-c", script],
        "env": list(env),
    }
    return restricted_pod(name, labels, container, restartPolicy="Never")


def restricted_pod(
    name: str, labels: dict[str, str], container: dict[str, Any], **spec: Any
) -> dict[str, Any]:
    """A pod of one `container` that the restricted Pod Security Standard admits (non-root, no
    capabilities, a read-only root filesystem, no API token); `spec` adds to its spec."""
    hardened = {**container, "securityContext": {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]}}}  # fmt: skip
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            **spec,
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [hardened],
        },
    }  # fmt: skip


def _wait_until_ended(name: str, timeout_seconds: float) -> str:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        phase = kubectl("-n", release.NAMESPACE, "get", "pod", name,
                        "-o", "jsonpath={.status.phase}")  # fmt: skip
        if phase in {"Succeeded", "Failed"}:
            return phase
        time.sleep(1)
    described = kubectl("-n", release.NAMESPACE, "describe", "pod", name)
    raise AssertionError(f"pod {name} did not end in {timeout_seconds:.0f} s: {described}")
