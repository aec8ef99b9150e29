"""The chart on the cluster: namespace `orders` enforcing the `restricted` Pod Security Standard,
`helm upgrade --install` of charts/order-service with its development profile (Redis and
PostgreSQL in the cluster, one exchange stand-in), a wait for both apps with their Dapr sidecars
Ready, and the port-forward that gives `/docs` on 127.0.0.1.

Image values: the app images are always the ones `up` built and loaded (the chart's published
images are for releases, not for a working tree). The stores' images are set only where they
were built here; where the official `redis`/`postgres` images can be pulled, the chart's defaults
stand."""

import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Any

from cluster.app_images import AppImages
from cluster.config import cluster_settings
from cluster.dapr import KUBECONFIG, run_tool
from cluster.steps import Stages
from cluster.store_images import StoreImages
from core.config import PROJECT_ROOT
from devstack import binaries
from devstack.binaries import MissingToolError
from devstack.processes import (
    ManagedProcess,
    ProcessGroup,
    StartupError,
    http_ok,
    say,
    wait_until,
)

NAMESPACE = "orders"
RELEASE = "order-service"
CHART = PROJECT_ROOT / "charts" / "order-service"
DEV_VALUES = CHART / "values-dev.yaml"
APPS = ("api", "placer")
INSTALL_TIMEOUT_SECONDS = 300
INSTALL_TIMEOUT = f"{INSTALL_TIMEOUT_SECONDS}s"
FORWARD_READY_SECONDS = 60.0


def install(
    stages: Stages, kubectl_path: Path, apps: AppImages, stores: StoreImages | None
) -> dict[str, list[str]]:
    """Namespace, `helm upgrade --install --wait`, then both Deployments rolled out with daprd
    Ready in every pod; returns each app pod's containers."""
    kubectl = [str(kubectl_path), "--kubeconfig", str(KUBECONFIG)]
    with stages.stage("release") as facts:
        _namespace(kubectl)
        values = {**apps.helm_values(), **(stores.helm_values() if stores else {})}
        facts["values"] = values
        try:
            _helm_install(values)
            pods = _wait_rolled_out(kubectl)
        except MissingToolError:
            _show_pods(kubectl)
            raise
        facts["pods"] = pods
        facts["restarts"] = _restarts(kubectl)
    say(f"Release {RELEASE} is up in namespace {NAMESPACE}: {', '.join(sorted(pods))}")
    return pods


def helm_args(values: Mapping[str, str]) -> list[str]:
    """helm's arguments for the install, as a platform team would type them (plus the
    kubeconfig `up` wrote)."""
    settings = [item for key, value in values.items() for item in ("--set", f"{key}={value}")]
    return ["upgrade", "--install", RELEASE, str(CHART),
            "--namespace", NAMESPACE, "-f", str(DEV_VALUES), *settings,
            "--wait", "--timeout", INSTALL_TIMEOUT, "--kubeconfig", str(KUBECONFIG)]  # fmt: skip


def _namespace(kubectl: list[str]) -> None:
    """Created once; the label enforced every time (a namespace made by hand gets it too)."""
    existing = run_tool([*kubectl, "get", "namespaces", "-o", "name"]).split()
    if f"namespace/{NAMESPACE}" not in existing:
        run_tool([*kubectl, "create", "namespace", NAMESPACE])
    run_tool([*kubectl, "label", "--overwrite", "namespace", NAMESPACE,
          "pod-security.kubernetes.io/enforce=restricted"])  # fmt: skip


def _helm_install(values: Mapping[str, str]) -> None:
    say(f"Installing the chart as {RELEASE} into {NAMESPACE} (values-dev.yaml)")
    run_tool([str(binaries.helm()), *helm_args(values)])


def _wait_rolled_out(kubectl: list[str]) -> dict[str, list[str]]:
    """Each app's rollout, then every app pod Ready with a `daprd` container (the injector's
    work: a pod the injector missed would be Ready without it)."""
    namespaced = [*kubectl, "-n", NAMESPACE]
    for app in APPS:
        run_tool([*namespaced, "rollout", "status", f"deployment/{RELEASE}-{app}",
              f"--timeout={INSTALL_TIMEOUT}"])  # fmt: skip
    pods = {
        pod["metadata"]["name"]: [container["name"] for container in pod["spec"]["containers"]]
        for pod in _ready_pods(namespaced)
    }
    missing = [name for name, containers in pods.items() if "daprd" not in containers]
    if missing or not pods:
        raise MissingToolError(f"pods without an injected daprd: {missing or 'no pods'}")
    return pods


def _ready_pods(namespaced: list[str]) -> list[dict[str, Any]]:
    """The app pods that stay, once all are Ready. Not `kubectl wait`: pods of the previous
    rollout can still be terminating (the preStop pause and the sidecar's blocked shutdown keep
    them about 20 s), and `kubectl wait` on a pod deleted while not Ready waits out its whole
    timeout."""
    selector = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component in (api,placer)"
    deadline = time.monotonic() + INSTALL_TIMEOUT_SECONDS
    while True:
        document = json.loads(run_tool([*namespaced, "get", "pods", "-l", selector, "-o", "json"]))
        pods = [
            pod for pod in document["items"] if pod["metadata"].get("deletionTimestamp") is None
        ]
        if pods and all(_ready(pod) for pod in pods):
            return pods
        if time.monotonic() > deadline:
            names = sorted(pod["metadata"]["name"] for pod in pods)
            raise MissingToolError(f"app pods not Ready within {INSTALL_TIMEOUT}: {names}")
        time.sleep(2)


def _ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _show_pods(kubectl: list[str]) -> None:
    """What a failed install left, for the person at the terminal."""
    with contextlib.suppress(MissingToolError, subprocess.TimeoutExpired):
        say("The release's pods:\n" + run_tool([*kubectl, "-n", NAMESPACE, "get", "pods"]))
        events = [*kubectl, "-n", NAMESPACE, "get", "events", "--sort-by=.lastTimestamp"]
        say("Its latest events:\n" + "\n".join(run_tool(events).splitlines()[-15:]))


def _restarts(kubectl: list[str]) -> dict[str, int]:
    """Container restarts per pod of the release (daprd restarts while PostgreSQL starts)."""
    document = json.loads(run_tool([*kubectl, "-n", NAMESPACE, "get", "pods", "-o", "json"]))
    return {
        pod["metadata"]["name"]: sum(s["restartCount"] for s in pod["status"]["containerStatuses"])
        for pod in document["items"]
    }


def forward(kubectl_path: Path) -> None:
    """`kubectl port-forward` of the API's Service to 127.0.0.1:CLUSTER_API_PORT until Ctrl-C
    (or until it ends); the ProcessGroup's guardian stops it should we be killed."""
    port = cluster_settings.CLUSTER_API_PORT
    command = [str(kubectl_path), "--kubeconfig", str(KUBECONFIG), "-n", NAMESPACE,
               "port-forward", f"svc/{RELEASE}-api", f"{port}:80",
               "--address", "127.0.0.1"]  # fmt: skip
    # SIGTERM (and SIGINT, also where a shell started us in the background) stop it as Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        with ProcessGroup() as group:
            process = group.start("port-forward", command, echo=True)
            _serve(process, port)
    except KeyboardInterrupt:  # also while waiting for the forward to answer
        say("Stopped the port-forward")
        return
    raise StartupError(f"kubectl port-forward ended (exit {process.popen.returncode})")


def _serve(process: ManagedProcess, port: int) -> None:
    """Until the port-forward ends (or a KeyboardInterrupt)."""
    wait_until(process, http_ok(f"http://127.0.0.1:{port}/health/ready"),
               what="forwarding the API", timeout_seconds=FORWARD_READY_SECONDS)  # fmt: skip
    say(f"The API on the cluster: http://127.0.0.1:{port}/docs (Ctrl-C stops the "
        "port-forward; the cluster stays up, `./run cluster down` removes it)")  # fmt: skip
    while process.running():
        time.sleep(0.5)


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt
