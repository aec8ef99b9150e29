"""The Helm chart, checked offline: lint, schemas, and the policies every deployment needs."""

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.chart.rendering import (
    CHART,
    KUBERNETES_VERSION,
    PROFILES,
    dapr_crd_schemas,
    helm,
    of_kind,
    render,
)

DAPR_KINDS = {"Component", "Resiliency", "Configuration", "Subscription"}
KEDA_KINDS = {"ScaledObject", "TriggerAuthentication"}
MONITORING_KINDS = {"ServiceMonitor", "PrometheusRule"}  # tests/chart/test_chart_observability.py


@pytest.fixture(scope="module", params=list(PROFILES))
def profile(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def manifests(profile: str) -> list[dict[str, Any]]:
    return render(*PROFILES[profile])


def test_helm_lint_strict_passes(profile: str) -> None:
    result = helm(
        "lint", "--strict", "--kube-version", KUBERNETES_VERSION, str(CHART), *PROFILES[profile]
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_manifests_match_the_schemas(manifests: list[dict[str, Any]]) -> None:
    checked = 0
    for manifest in manifests:
        if manifest["kind"] in DAPR_KINDS | KEDA_KINDS | MONITORING_KINDS:
            continue
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        checked += 1
    assert checked >= 8


def test_dapr_resources_match_the_runtime_crds(manifests: list[dict[str, Any]]) -> None:
    schemas = dapr_crd_schemas()
    dapr_resources = [m for m in manifests if m["kind"] in DAPR_KINDS]
    assert {m["kind"] for m in dapr_resources} >= {"Component", "Resiliency", "Configuration"}
    for resource in dapr_resources:
        jsonschema.validate(resource, schemas[resource["kind"]])


def test_every_container_has_resources_probes_and_runs_locked_down(
    manifests: list[dict[str, Any]],
) -> None:
    for deployment in of_kind(manifests, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            where = f"{deployment['metadata']['name']}/{container['name']}"
            assert container["resources"]["requests"], where
            assert "livenessProbe" in container and "readinessProbe" in container, where
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"]["drop"] == ["ALL"], where


def test_app_deployments_carry_the_dapr_annotations(manifests: list[dict[str, Any]]) -> None:
    apps = [d for d in of_kind(manifests, "Deployment") if d["metadata"]["name"].endswith(
        ("-api", "-placer"))]  # fmt: skip
    assert len(apps) == 2
    for deployment in apps:
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["dapr.io/enabled"] == "true"
        assert annotations["dapr.io/app-id"] == deployment["metadata"]["name"]
        assert annotations["dapr.io/app-port"].isdigit()
        assert annotations["dapr.io/config"]
        # The placer's deliveries go over gRPC (see placer/callbacks.py).
        protocol = "grpc" if deployment["metadata"]["name"].endswith("-placer") else "http"
        assert annotations["dapr.io/app-protocol"] == protocol
        assert annotations["dapr.io/api-token-secret"]


def test_autoscalers_target_the_app_deployments(
    manifests: list[dict[str, Any]], profile: str
) -> None:
    deployments = {d["metadata"]["name"] for d in of_kind(manifests, "Deployment")}
    autoscalers = of_kind(manifests, "HorizontalPodAutoscaler")
    targets = {hpa["spec"]["scaleTargetRef"]["name"] for hpa in autoscalers}
    assert targets <= deployments
    expected = {
        "default": {"order-service-api", "order-service-placer"},
        "dev": set(),
        "redis-state": {"order-service-api", "order-service-placer"},
        "ingress-keda": {"order-service-api"},  # KEDA scales the placer instead
        "managed": {"order-service-api", "order-service-placer"},
    }[profile]
    assert targets == expected
    for deployment in of_kind(manifests, "Deployment"):
        if deployment["metadata"]["name"] in targets:
            assert "replicas" not in deployment["spec"]


def test_connection_settings_are_secret_references(manifests: list[dict[str, Any]]) -> None:
    for component in of_kind(manifests, "Component"):
        for item in component["spec"]["metadata"]:
            if item["name"] in {"redisHost", "redisPassword", "connectionString"}:
                assert "secretKeyRef" in item and "value" not in item, item


def test_client_api_keys_come_from_the_named_secret(
    profile: str, manifests: list[dict[str, Any]]
) -> None:
    deployments = of_kind(manifests, "Deployment")
    api = next(d for d in deployments if d["metadata"]["name"].endswith("-api"))
    env = {item["name"]: item for item in api["spec"]["template"]["spec"]["containers"][0]["env"]}
    if profile != "ingress-keda":
        assert "API_KEYS" not in env  # off unless asked for
        return
    reference = {"name": "order-api-keys", "key": "api-keys"}
    assert env["API_KEYS"]["valueFrom"]["secretKeyRef"] == reference


def test_components_are_scoped_to_the_apps_that_use_them(
    manifests: list[dict[str, Any]],
) -> None:
    scopes = {c["metadata"]["name"]: c["scopes"] for c in of_kind(manifests, "Component")}
    assert scopes == {
        "order-service-orderstore": ["order-service-api"],
        "order-service-orderstore-placer": ["order-service-placer"],
        "order-service-orderpubsub": ["order-service-api", "order-service-placer"],
        "order-service-outboxpubsub": ["order-service-api", "order-service-placer"],
        "order-service-outbox-markers": ["order-service-placer"],
    }


def test_redis_pubsubs_check_for_redeliveries_in_milliseconds(
    manifests: list[dict[str, Any]],
) -> None:
    """The runtime reads redeliverInterval only as milliseconds (docs/runtime-defects.md, 6)."""
    intervals = {
        component["metadata"]["name"]: item["value"]
        for component in of_kind(manifests, "Component")
        if component["spec"]["type"] == "pubsub.redis"
        for item in component["spec"]["metadata"]
        if item["name"] == "redeliverInterval"
    }
    assert intervals == {
        "order-service-orderpubsub": "15000",
        "order-service-outboxpubsub": "15000",
    }


def test_the_redelivery_check_is_given_in_seconds() -> None:
    seconds = render("--set", "pubsub.redeliverIntervalSeconds=2")
    [orders] = [
        c for c in of_kind(seconds, "Component") if c["metadata"]["name"].endswith("-orderpubsub")
    ]
    assert {"name": "redeliverInterval", "value": "2000"} in orders["spec"]["metadata"]


def test_a_held_delivery_ends_by_the_orders_age_before_its_attempt_times_out(
    manifests: list[dict[str, Any]],
) -> None:
    # The placer holds a delivery while the exchange is down, up to the maximum order age: the
    # sidecar's timeout for the attempt must be longer, or the hold spends a retry.
    [placer] = [
        d for d in of_kind(manifests, "Deployment") if d["metadata"]["name"].endswith("-placer")
    ]
    [container] = placer["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    [placement] = [
        r for r in of_kind(manifests, "Resiliency") if r["metadata"]["name"].endswith("-placement")
    ]
    attempt = placement["spec"]["policies"]["timeouts"]["placementAttempt"]
    assert float(attempt.removesuffix("s")) > float(env["PLACER_MAX_ORDER_AGE_SECONDS"])


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ("stateStore: {type: mongodb}", "/stateStore/type"),
        ("placer: {maxOrderAgeSeconds: 0}", "/placer/maxOrderAgeSeconds"),
        ("placer: {concurrency: 0}", "/placer/concurrency"),
        ("streamTrim: {intervalSeconds: 0}", "/streamTrim/intervalSeconds"),
        ("streamTrim: {timeoutSeconds: soon}", "/streamTrim/timeoutSeconds"),
        ("streamTrim: {maxLen: 1000}", "/streamTrim"),
        ("api: {autoscaling: {enabled: yes-please}}", "/api/autoscaling/enabled"),
        ("redis: {secretName: ''}", "/redis/secretName"),
        ("resiliency: {maxInterval: ten seconds}", "/resiliency/maxInterval"),
        ("image: {pullPolicy: Sometimes}", "/image/pullPolicy"),
        ("image: {digest: {api: latest}}", "/image/digest/api"),
        ("redis: {enableTLS: 'yes'}", "/redis/enableTLS"),
        (
            "api: {topologySpreadConstraints: [{maxSkew: 1, topologyKey: zone, "
            "whenUnsatisfiable: Sometimes}]}",
            "/api/topologySpreadConstraints/0/whenUnsatisfiable",
        ),
        ("networkPolicy: {egress: {enabled: true, storeCIDRs: [db]}}", "/networkPolicy/egress"),
        ("networkPolicy: {extraEgress: []}", "/networkPolicy"),  # extra rules go per app
        ("dapr: {metricsPort: 0}", "/dapr/metricsPort"),
        # The duration form the runtime would silently drop (docs/runtime-defects.md, 6).
        ("pubsub: {redeliverInterval: 30s}", "/pubsub"),
        ("pubsub: {redeliverIntervalSeconds: 0}", "/pubsub/redeliverIntervalSeconds"),
    ],
)
def test_values_schema_rejects_bad_values(tmp_path: Path, values: str, message: str) -> None:
    bad_values = tmp_path / "values.yaml"
    bad_values.write_text(values)
    result = helm(
        "template", "order-service", str(CHART), "--kube-version", KUBERNETES_VERSION,
        "-f", str(bad_values),
    )  # fmt: skip
    assert result.returncode != 0
    assert message in result.stderr


def value_paths(values: dict[str, Any], prefix: str = "") -> Iterator[str]:
    """The dotted path of every key of values.yaml, parents before their children."""
    for key, value in values.items():
        path = f"{prefix}{key}"
        yield path
        if isinstance(value, dict):
            yield from value_paths(value, f"{path}.")


def schema_properties(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any] | None:
    """The properties a schema node names (following $ref and allOf); None for a free-form
    object."""
    while "$ref" in node:
        node = schema["definitions"][node["$ref"].rsplit("/", 1)[1]]
    properties = dict(node.get("properties", {}))
    for part in node.get("allOf", []):
        properties |= schema_properties(schema, part) or {}
    return properties or None


def test_every_value_is_in_the_schema_and_the_readme() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    readme = (CHART / "README.md").read_text()
    documented = set(re.findall(r"`([A-Za-z][\w.*]*)`", readme))
    nodes: dict[str, dict[str, Any] | None] = {"": schema}
    for path in value_paths(values):
        parent, _, key = path.rpartition(".")
        node = nodes.get(parent)
        properties = schema_properties(schema, node) if node is not None else None
        if properties is not None:
            assert key in properties, f"{path} is not in values.schema.json"
        nodes[path] = properties.get(key) if properties else None
        # A key, or one of its parents, or `<parent>.*`, has a row in the values table.
        prefixes = [path.rsplit(".", n)[0] for n in range(path.count(".") + 1)]
        named = any(p in documented or f"{p}.*" in documented for p in prefixes)
        has_children = any(d.startswith(f"{path}.") for d in documented)
        assert named or has_children, f"{path} is not in the chart README"


def test_pod_annotations_and_labels_that_look_like_numbers_are_strings() -> None:
    """`--set` parses digits as a number, which Kubernetes refuses in an annotation or label."""
    manifests = render("--set", "podAnnotations.rollout=13367415", "--set", "podLabels.team=42")
    deployments = of_kind(manifests, "Deployment")
    assert {d["metadata"]["name"] for d in deployments} >= {
        "order-service-api",
        "order-service-placer",
    }
    for deployment in deployments:
        metadata = deployment["spec"]["template"]["metadata"]
        assert metadata["annotations"]["rollout"] == "13367415"
        assert metadata["labels"]["team"] == "42"
