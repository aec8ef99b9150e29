"""The API's HorizontalPodAutoscaler on the local cluster, with metrics-server's CPU figures:
the release upgraded with the API's HPA on (1 to 3 pods, a short scale-down window), a bounded
load of reads through the API's Service from a pod in the namespace, the API scaled out to a
second pod Ready with its sidecar, and back to one pod after the load. The release is put back
as `up` installs it afterwards. The times and the CPU seen go to cluster/results/autoscaling.json
(recorded, not asserted).

With the cluster suite; alone: `./run_tests.sh -m kind tests/e2e/test_cluster_autoscaling.py`.
"""

import json
import subprocess
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from cluster import dapr, release, store_images
from cluster.app_images import AppImages
from cluster.docker import Engine
from cluster.steps import RESULTS
from cluster.store_images import StoreImages
from devstack import binaries
from tests.e2e.cluster_support import (
    RELEASE_LABELS,
    component_pods,
    kubectl,
    pod_ready,
    run_client_pod,
    staying,
    wait_release_settled,
)
from tests.polling import wait_for

pytestmark = [pytest.mark.kind, pytest.mark.timeout(1800)]

API = f"{release.RELEASE}-api"  # the Deployment, its Service and its HPA
TARGET_CPU_PERCENT = 50  # of the pod's requests (the API's and its sidecar's: 100m)
SCALE_DOWN_WINDOW_SECONDS = 30  # instead of Kubernetes' 300
AUTOSCALING = {
    "api.autoscaling.enabled": "true",
    "api.autoscaling.minReplicas": "1",
    "api.autoscaling.maxReplicas": "3",
    "api.autoscaling.targetCPUUtilizationPercentage": str(TARGET_CPU_PERCENT),
    "api.autoscaling.behavior.scaleDown.stabilizationWindowSeconds": str(SCALE_DOWN_WINDOW_SECONDS),
}
# The load: clients in one pod reading orders that do not exist (404 after a state store read
# through the sidecar: no order is made, nothing for the placer), for a fixed time.
LOAD_CLIENTS = 8
LOAD_SECONDS = 120
METRICS_WITHIN_SECONDS = 180  # the HPA's first CPU figure after it is made
SCALED_IN_WITHIN_SECONDS = 420  # after the load: the window, metrics' lag, the pod's drain
POLL_SECONDS = 2
HELM_TIMEOUT_SECONDS = 420  # above the install's own --timeout
AUTOSCALING_RESULTS = RESULTS.with_name("autoscaling.json")

LOAD_SCRIPT = """
import json, threading, time, urllib.error, urllib.request, uuid

answers, lock = {}, threading.Lock()
end = time.monotonic() + SECONDS


def client():
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(f"{URL}/orders/{uuid.uuid4()}", timeout=10) as response:
                answer = str(response.status)
        except urllib.error.HTTPError as error:
            answer = str(error.code)
        except OSError as error:
            answer = type(error).__name__
        with lock:
            answers[answer] = answers.get(answer, 0) + 1


threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps(answers))
"""


@dataclass
class Watch:
    """What the HPA and the API's pods showed, in seconds since the load started."""

    started: float = field(default_factory=time.monotonic)
    desired_above_one: float | None = None
    second_pod_ready: float | None = None
    max_cpu_percent: int = 0
    max_desired: int = 1
    cpu_samples: list[tuple[float, int]] = field(default_factory=list)

    def look(self) -> None:
        now = round(time.monotonic() - self.started, 1)
        status = hpa_status()
        desired = status.get("desiredReplicas", 1)
        cpu = cpu_percent(status)
        if cpu is not None:
            self.max_cpu_percent = max(self.max_cpu_percent, cpu)
            if not self.cpu_samples or self.cpu_samples[-1][1] != cpu:
                self.cpu_samples.append((now, cpu))
        self.max_desired = max(self.max_desired, desired)
        if desired > 1 and self.desired_above_one is None:
            self.desired_above_one = now
        if len(ready_api_pods()) >= 2 and self.second_pod_ready is None:
            self.second_pod_ready = now


def test_the_api_scales_out_under_load_and_back_in_after_it(cluster: Engine) -> None:
    as_up_installs = up_values()
    try:
        helm(*release.helm_args({**as_up_installs, **AUTOSCALING}))
        idle_cpu = wait_for_cpu_figure()
        # The HPA's first figures may still count the load of earlier tests: back at one first.
        wait_for_one_pod()
        watch, load_answers = scale_out_under_load()
        assert watch.desired_above_one is not None, f"the HPA never asked for more: {watch}"
        assert watch.second_pod_ready is not None, f"no second API pod became Ready: {watch}"
        load_ended = time.monotonic()
        scaled_in = wait_for_one_pod()
        _record({
            "hpa": AUTOSCALING,
            "cpu_requests": cpu_requests(),
            "load": {"clients": LOAD_CLIENTS, "seconds": LOAD_SECONDS, "answers": load_answers},
            "idle_cpu_percent": idle_cpu,
            "max_cpu_percent": watch.max_cpu_percent,
            "cpu_percent_seen": watch.cpu_samples,
            "max_desired_replicas": watch.max_desired,
            "desired_above_1_after_seconds": watch.desired_above_one,
            "second_pod_ready_after_seconds": watch.second_pod_ready,
            "one_replica_after_load_seconds": round(scaled_in - load_ended, 1),
        })  # fmt: skip
    finally:
        helm(*release.helm_args(as_up_installs))
    assert not hpa_exists()
    wait_for(lambda: replicas() == (1, 1), what="one API pod as up installs it",
             timeout_seconds=SCALED_IN_WITHIN_SECONDS)  # fmt: skip
    # The scaled-in pods take their grace period to go: the next tests count pods.
    wait_release_settled()


def scale_out_under_load() -> tuple[Watch, dict[str, int]]:
    """Runs the load in a pod and watches until a second API pod is Ready; returns what was
    seen and the load's answers (the load runs its whole time)."""
    with ThreadPoolExecutor(1) as pool:
        load = pool.submit(run_client_pod, load_script(), labels=RELEASE_LABELS,
                           timeout_seconds=LOAD_SECONDS + 300)  # fmt: skip
        watch = Watch()
        while watch.second_pod_ready is None and not load.done():
            watch.look()
            time.sleep(POLL_SECONDS)
        while not load.done():  # the CPU figures until the load ends
            watch.look()
            time.sleep(POLL_SECONDS)
        return watch, load_answers(load)


def load_script() -> str:
    url = f"http://{API}:80"
    return f"URL = {url!r}\nSECONDS = {LOAD_SECONDS}\nCLIENTS = {LOAD_CLIENTS}\n" + LOAD_SCRIPT


def load_answers(load: Future[tuple[str, str]]) -> dict[str, int]:
    phase, output = load.result()
    assert phase == "Succeeded", output
    answers: dict[str, int] = json.loads(output.strip().splitlines()[-1])
    return answers


def wait_for_cpu_figure() -> int:
    """The HPA's first CPU figure (metrics-server's, for the API's pod); returns it."""
    deadline = time.monotonic() + METRICS_WITHIN_SECONDS
    while (cpu := cpu_percent(hpa_status())) is None:
        assert time.monotonic() < deadline, f"the HPA got no CPU figure: {hpa_status()}"
        time.sleep(POLL_SECONDS)
    return cpu


def wait_for_one_pod() -> float:
    """Until the HPA and the Deployment are back at one pod and only one API pod is left;
    returns when."""
    deadline = time.monotonic() + SCALED_IN_WITHIN_SECONDS
    while not (
        hpa_status().get("desiredReplicas") == 1
        and replicas() == (1, 1)
        and len(api_pods()) == 1
        and len(ready_api_pods()) == 1
    ):
        assert time.monotonic() < deadline, f"not back at one API pod: {hpa_status()}"
        time.sleep(POLL_SECONDS)
    return time.monotonic()


def hpa_status() -> dict[str, Any]:
    status: dict[str, Any] = json.loads(kubectl("-n", release.NAMESPACE, "get", "hpa", API,
                                                "-o", "jsonpath={.status}"))  # fmt: skip
    return status


def hpa_exists() -> bool:
    found = kubectl("-n", release.NAMESPACE, "get", "hpa", "-o", "name")
    return f"horizontalpodautoscaler.autoscaling/{API}" in found.split()


def cpu_percent(status: dict[str, Any]) -> int | None:
    """The API pods' average CPU, in percent of their requests, as the HPA last saw it."""
    for metric in status.get("currentMetrics") or []:
        current = metric.get("resource", {}).get("current", {})
        if metric.get("type") == "Resource" and "averageUtilization" in current:
            return int(current["averageUtilization"])
    return None


def replicas() -> tuple[int, int]:
    """The API Deployment's wanted and current pods."""
    deployment = json.loads(kubectl("-n", release.NAMESPACE, "get", "deployment", API,
                                    "-o", "json"))  # fmt: skip
    return deployment["spec"]["replicas"], deployment["status"].get("replicas", 0)


def cpu_requests() -> dict[str, str]:
    """Each container's CPU request in an API pod: what the HPA's percentages are of."""
    [pod, *_] = api_pods()
    return {container["name"]: container["resources"]["requests"]["cpu"]
            for container in pod["spec"]["containers"]}  # fmt: skip


def api_pods() -> list[dict[str, Any]]:
    """The API's pods, but those on their way out. (The load's pod has the release's labels
    too, and no component.)"""
    return [pod for pod in component_pods("api") if staying(pod)]


def ready_api_pods() -> list[str]:
    """API pods with an injected daprd and every container Ready."""
    return [
        pod["metadata"]["name"]
        for pod in api_pods()
        if "daprd" in [container["name"] for container in pod["spec"]["containers"]]
        and pod_ready(pod)
    ]


def up_values() -> dict[str, str]:
    """The values `up` sets beside values-dev.yaml (the images it built or loaded), read back
    from the release it installed."""
    document = json.loads(helm("get", "values", release.RELEASE, "-n", release.NAMESPACE,
                               "-o", "json", "--kubeconfig", str(dapr.KUBECONFIG)))  # fmt: skip
    stores = StoreImages(dict.fromkeys(store_images.PACKAGES, ""))
    keys = AppImages("").helm_values().keys() | stores.helm_values().keys()
    values = {}
    for key in sorted(keys):
        node: Any = document
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            values[key] = str(node)
    assert {"image.repository", "image.tag"} <= values.keys(), document
    return values


def helm(*args: str) -> str:
    result = subprocess.run([str(binaries.helm()), *args], capture_output=True, text=True,
                            timeout=HELM_TIMEOUT_SECONDS, check=False)  # fmt: skip
    assert result.returncode == 0, f"helm {' '.join(args)}: {result.stderr}"
    return result.stdout


def _record(figures: dict[str, object]) -> None:
    figures["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    AUTOSCALING_RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
