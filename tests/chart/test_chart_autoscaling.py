"""The HorizontalPodAutoscalers' scaling behavior (`<app>.autoscaling.behavior`): passed to the
HPA as Kubernetes takes it, Kubernetes' defaults when empty, refused by the values schema when
it is not a behavior."""

import json
from typing import Any

import kubernetes_validate
import pytest

from tests.chart.rendering import CHART, KUBERNETES_VERSION, RELEASE, helm, of_kind, render

# What the cluster suite sets to see the API scale in within a minute.
SHORT_WINDOW = {"scaleDown": {"stabilizationWindowSeconds": 30}}
BOTH_WAYS = {
    "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                "policies": [{"type": "Pods", "value": 2, "periodSeconds": 15}]},
    "scaleDown": {"policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}]},
}  # fmt: skip


def autoscalers(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The HPAs by the component they scale."""
    return {hpa["metadata"]["labels"]["app.kubernetes.io/component"]: hpa
            for hpa in of_kind(manifests, "HorizontalPodAutoscaler")}  # fmt: skip


def test_the_api_scales_with_kubernetes_defaults_and_the_placer_scales_in_slowly() -> None:
    rendered = autoscalers(render())
    assert "behavior" not in rendered["api"]["spec"]
    assert rendered["placer"]["spec"]["behavior"] == {
        "scaleDown": {"stabilizationWindowSeconds": 300}
    }


@pytest.mark.parametrize("behavior", [SHORT_WINDOW, BOTH_WAYS], ids=["short-window", "both"])
def test_a_behavior_is_passed_to_the_hpa_as_given(behavior: dict[str, Any]) -> None:
    # The development profile with the API's HPA on, as the cluster suite installs it.
    manifests = render(
        "-f", str(CHART / "values-dev.yaml"), "--set", "api.autoscaling.enabled=true",
        "--set", "api.autoscaling.minReplicas=1",
        "--set-json", f"api.autoscaling.behavior={json.dumps(behavior)}",
    )  # fmt: skip
    hpa = autoscalers(manifests)["api"]
    assert hpa["spec"]["behavior"] == behavior
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 10)
    kubernetes_validate.validate(hpa, KUBERNETES_VERSION, strict=True)
    [api] = [
        d for d in of_kind(manifests, "Deployment") if d["metadata"]["name"] == f"{RELEASE}-api"
    ]
    assert "replicas" not in api["spec"]  # the HPA's to set


def test_the_placers_behavior_can_be_replaced() -> None:
    behavior = {"scaleDown": {"stabilizationWindowSeconds": 900}}
    rendered = autoscalers(
        render("--set-json", f"placer.autoscaling.behavior={json.dumps(behavior)}")
    )
    assert rendered["placer"]["spec"]["behavior"] == behavior
    assert "behavior" not in rendered["api"]["spec"]


@pytest.mark.parametrize(
    ("behavior", "message"),
    [
        ({"scaleDown": {"stabilizationWindow": 30}}, "/api/autoscaling/behavior/scaleDown"),
        ({"scaleDown": {"stabilizationWindowSeconds": -1}}, "stabilizationWindowSeconds"),
        ({"scaleIn": {"stabilizationWindowSeconds": 30}}, "/api/autoscaling/behavior"),
        (
            {"scaleUp": {"selectPolicy": "Fastest"}},
            "/api/autoscaling/behavior/scaleUp/selectPolicy",
        ),
        ({"scaleUp": {"policies": [{"type": "Pods", "value": 2}]}}, "periodSeconds"),
    ],
)
def test_values_schema_rejects_what_is_not_a_behavior(
    behavior: dict[str, Any], message: str
) -> None:
    result = helm(
        "template", RELEASE, str(CHART), "--kube-version", KUBERNETES_VERSION,
        "--set-json", f"api.autoscaling.behavior={json.dumps(behavior)}",
    )  # fmt: skip
    assert result.returncode != 0
    assert message in result.stderr
