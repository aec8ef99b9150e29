"""How the apps' pods stop, rendered: a preStop pause on each app container, the sidecar's
blocked shutdown after it, and a termination grace period that covers both; values that would
have the sidecar stop before its app are refused."""

from typing import Any

import pytest

from tests.chart.rendering import CHART, KUBERNETES_VERSION, PROFILES, helm, of_kind, render

APPS = ("api", "placer")


def app_pods(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each app's pod template (metadata and spec), by app."""
    deployments = {d["metadata"]["name"]: d for d in of_kind(manifests, "Deployment")}
    return {app: deployments[f"order-service-{app}"]["spec"]["template"] for app in APPS}


def app_container(pod: dict[str, Any], app: str) -> dict[str, Any]:
    container: dict[str, Any] = next(c for c in pod["spec"]["containers"] if c["name"] == app)
    return container


@pytest.mark.parametrize("profile", ["default", "dev"])
def test_the_apps_pause_and_their_sidecars_outlive_them_by_default(profile: str) -> None:
    for app, pod in app_pods(render(*PROFILES[profile])).items():
        lifecycle = app_container(pod, app)["lifecycle"]
        assert lifecycle == {"preStop": {"sleep": {"seconds": 10}}}, app
        annotations = pod["metadata"]["annotations"]
        # 20 s: the 10 s pause, the API's 3 s deadline, and a margin for the placer's 5 s.
        assert annotations["dapr.io/block-shutdown-duration"] == "20s", app
        assert annotations["dapr.io/graceful-shutdown-seconds"] == "20", app
        assert pod["spec"]["terminationGracePeriodSeconds"] == 20 + 20 + 10, app


def test_the_shutdown_values_are_applied() -> None:
    manifests = render(
        *("--set", "shutdown.preStopSleepSeconds=5"),
        *("--set", "dapr.blockShutdownSeconds=9"),
        *("--set", "dapr.gracefulShutdownSeconds=7"),
    )  # fmt: skip
    for app, pod in app_pods(manifests).items():
        assert app_container(pod, app)["lifecycle"]["preStop"]["sleep"]["seconds"] == 5
        assert pod["metadata"]["annotations"]["dapr.io/block-shutdown-duration"] == "9s"
        assert pod["spec"]["terminationGracePeriodSeconds"] == 9 + 7 + 10
        # Only the app gets the pause: the injector adds the sidecar, and the init container
        # has nothing to drain.
        assert all("lifecycle" not in c for c in pod["spec"].get("initContainers", []))


def test_zero_turns_the_pause_and_the_block_off() -> None:
    manifests = render(
        "--set", "shutdown.preStopSleepSeconds=0", "--set", "dapr.blockShutdownSeconds=0"
    )
    for app, pod in app_pods(manifests).items():
        assert "lifecycle" not in app_container(pod, app)
        assert "dapr.io/block-shutdown-duration" not in pod["metadata"]["annotations"]
        assert pod["spec"]["terminationGracePeriodSeconds"] == 20 + 10


@pytest.mark.parametrize(
    ("values", "message"),
    [
        # The sidecar would stop while its app still sleeps or answers its last order.
        (["--set", "dapr.blockShutdownSeconds=12"], "must be at least"),
        (["--set", "dapr.blockShutdownSeconds=0"], "must be at least"),
        (["--set-json", "orderTimeoutSeconds=10.5"], "(20) must be at least"),
        (["--set", "shutdown.preStopSleepSeconds=-1"], "/shutdown/preStopSleepSeconds"),
        (["--set", "dapr.blockShutdownSeconds=forever"], "/dapr/blockShutdownSeconds"),
        (["--set", "shutdown.drainSeconds=5"], "/shutdown"),
    ],
)
def test_values_that_stop_the_sidecar_first_are_refused(values: list[str], message: str) -> None:
    result = helm(
        "template", "order-service", str(CHART), "--kube-version", KUBERNETES_VERSION, *values
    )
    assert result.returncode != 0
    assert message in result.stderr
