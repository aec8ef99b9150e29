"""The chart's observability: scrape settings on every app, and, when enabled, ServiceMonitors,
alert rules and a dashboard that validate and query only metrics the apps serve."""

import json
import re
from typing import Any

import jsonschema
import promql_parser
import pytest
from prometheus_client.metrics import MetricWrapperBase

import app.metrics
import placer.metrics
from tests.chart.rendering import PROFILES, of_kind, prometheus_operator_crd_schemas, render

MONITORING = PROFILES["ingress-keda"]  # the profile with ServiceMonitors, rules and dashboard


@pytest.fixture(scope="module")
def monitored() -> list[dict[str, Any]]:
    return render(*MONITORING)


SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
}


def served_metric_names() -> set[str]:
    """Every sample name the apps' metrics produce (counters' _total, histograms' _bucket...)."""
    values = [*vars(app.metrics).values(), *vars(placer.metrics).values()]
    metrics = [value for value in values if isinstance(value, MetricWrapperBase)]
    assert len(metrics) >= 9
    return {
        family.name + suffix
        for metric in metrics
        for family in metric.describe()
        for suffix in SAMPLE_SUFFIXES[family.type]
    }


def metric_names_in(expr: str) -> set[str]:
    """The metric names a PromQL expression selects; raises on a syntax error."""
    names: set[str] = set()

    def visit(node: promql_parser.Expr) -> bool:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def app_pods(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    deployments = of_kind(manifests, "Deployment")
    return [d["spec"]["template"] for d in deployments
            if d["metadata"]["name"].endswith(("-api", "-placer"))]  # fmt: skip


def test_every_app_pod_says_where_its_metrics_are() -> None:
    pods = app_pods(render())
    assert len(pods) == 2
    for pod in pods:
        annotations = pod["metadata"]["annotations"]
        (container,) = [c for c in pod["spec"]["containers"] if c["name"] in ("api", "placer")]
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        env = {item["name"]: item.get("value") for item in container["env"]}
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == "/metrics"
        assert int(annotations["prometheus.io/port"]) == ports["metrics"]
        # The app serves them there, on every interface of the pod, as JSON logs beside them.
        port_setting = "API_METRICS_PORT" if container["name"] == "api" else "PLACER_METRICS_PORT"
        assert int(env[port_setting]) == ports["metrics"]
        assert env["METRICS_HOST"] == "0.0.0.0"
        assert env["LOG_FORMAT"] == "json"
        # The sidecar's own metrics stay on.
        assert annotations["dapr.io/enable-metrics"] == "true"


def test_network_policies_let_the_scrapers_in() -> None:
    """To the apps' metrics port and their sidecars' (9090), from `metrics.scrapeFrom`."""
    policies = of_kind(render(), "NetworkPolicy")
    assert len(policies) == 2
    monitoring = {"kubernetes.io/metadata.name": "monitoring"}
    scrapers = [{"namespaceSelector": {"matchLabels": monitoring}}]
    for policy in policies:
        rules = policy["spec"]["ingress"]
        ports = [{"port": 9464, "protocol": "TCP"}, {"port": 9090, "protocol": "TCP"}]
        assert {"from": scrapers, "ports": ports} in rules


def test_monitoring_resources_are_off_by_default() -> None:
    kinds = {manifest["kind"] for manifest in render()}
    assert not kinds & {"ServiceMonitor", "PrometheusRule"}
    assert not [m for m in of_kind(render(), "ConfigMap") if "dashboard" in m["metadata"]["name"]]


def test_service_monitors_and_rules_match_the_operators_crds(
    monitored: list[dict[str, Any]],
) -> None:
    schemas = prometheus_operator_crd_schemas()
    resources = [m for m in monitored if m["kind"] in schemas]
    assert sorted(m["kind"] for m in resources) == [
        "PrometheusRule", "ServiceMonitor", "ServiceMonitor"
    ]  # fmt: skip
    for resource in resources:
        # Not jsonschema.validate: it checks the schema first, and one of the CRD's patterns
        # uses a Go flag syntax Python's re refuses (in a field the chart does not set).
        errors = list(jsonschema.Draft7Validator(schemas[resource["kind"]]).iter_errors(resource))
        assert errors == [], resource["kind"]


def test_service_monitor_finds_both_apps_metrics_ports(monitored: list[dict[str, Any]]) -> None:
    apps, sidecars = of_kind(monitored, "ServiceMonitor")
    selector = apps["spec"]["selector"]["matchLabels"]
    services = [s for s in of_kind(monitored, "Service")
                if selector.items() <= s["metadata"]["labels"].items()]  # fmt: skip
    components = set()
    for service in services:
        assert "metrics" in {port["name"] for port in service["spec"]["ports"]}
        components.add(service["metadata"]["labels"]["app.kubernetes.io/component"])
    assert components == {"api", "placer"}
    # The sidecars' Services, as the Dapr operator makes them (`<app-id>-dapr`, with the label
    # dapr.io/enabled only): this release's, not another Dapr app's in the namespace.
    assert sidecars["spec"]["selector"]["matchLabels"] == {"dapr.io/enabled": "true"}
    assert sidecars["spec"]["namespaceSelector"] == {"matchNames": ["orders"]}
    [endpoint] = sidecars["spec"]["endpoints"]
    assert endpoint["port"] == "dapr-metrics"
    [keep] = endpoint["relabelings"]
    assert keep["action"] == "keep"
    assert keep["sourceLabels"] == ["__meta_kubernetes_service_name"]
    kept = {name for name in ("order-service-api-dapr", "order-service-placer-dapr",
                              "other-app-dapr", "order-service-api-dapr-x")
            if re.fullmatch(keep["regex"], name)}  # fmt: skip
    assert kept == {"order-service-api-dapr", "order-service-placer-dapr"}


def test_alert_rules_query_served_metrics(monitored: list[dict[str, Any]]) -> None:
    (rule_set,) = of_kind(monitored, "PrometheusRule")
    rules = rule_set["spec"]["groups"][0]["rules"]
    assert {rule["alert"] for rule in rules} == {
        "OrderBacklogGrowing", "OrdersDeadLettered", "ExchangeFailureRateHigh", "ExchangeDown"
    }  # fmt: skip
    served = served_metric_names()
    for rule in rules:
        assert metric_names_in(rule["expr"]) <= served, rule["alert"]


def test_dashboard_is_grafana_json_on_served_metrics(monitored: list[dict[str, Any]]) -> None:
    (config_map,) = [m for m in of_kind(monitored, "ConfigMap")
                     if "dashboard" in m["metadata"]["name"]]  # fmt: skip
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config_map["data"]["order-service.json"])
    titles = {panel["title"] for panel in dashboard["panels"]}
    assert {
        "Intake",
        "Placement by outcome",
        "Backlog",
        "Accept → placed",
        "Dead letters",
        "Exchange down",
    } <= titles
    served = served_metric_names()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            assert metric_names_in(target["expr"]) <= served, panel["title"]


def test_traces_go_to_the_configured_collector(monitored: list[dict[str, Any]]) -> None:
    configurations = {c["metadata"]["name"]: c for c in of_kind(monitored, "Configuration")}
    assert len(configurations) == 2
    for pod in app_pods(monitored):
        configuration = configurations[pod["metadata"]["annotations"]["dapr.io/config"]]
        otel = configuration["spec"]["tracing"]["otel"]
        assert otel == {"endpointAddress": "otel-collector.monitoring:4318", "isSecure": False,
                        "protocol": "http"}  # fmt: skip
        env = {item["name"]: item.get("value") for item in pod["spec"]["containers"][0]["env"]}
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.monitoring:4318"
        sampling = configuration["spec"]["tracing"]["samplingRate"]
        assert env["OTEL_TRACES_SAMPLER_ARG"] == sampling
