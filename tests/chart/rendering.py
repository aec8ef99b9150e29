"""Renders the Helm chart with the project's helm, for the chart tests."""

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from core.config import PROJECT_ROOT
from devstack import binaries

CHART = PROJECT_ROOT / "charts" / "order-service"
RELEASE = "order-service"
# The Kubernetes version we render for and validate against (helm built with `go install`
# assumes an old one otherwise).
KUBERNETES_VERSION = "1.33.0"

DIGEST = "sha256:" + "0123456789abcdef" * 4
# Extra NetworkPolicy rules: the placer to an exchange outside the cluster, a gateway to the API.
EXCHANGE_EGRESS = {
    "to": [{"ipBlock": {"cidr": "192.0.2.0/24"}}], "ports": [{"port": 443, "protocol": "TCP"}],
}  # fmt: skip
GATEWAY_INGRESS = {
    "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gateway"}}}],
}
# Every values profile the chart ships or documents, as `helm template` arguments.
PROFILES: dict[str, list[str]] = {
    "default": [],
    "dev": ["-f", str(CHART / "values-dev.yaml")],
    "redis-state": ["--set", "stateStore.type=redis"],
    "ingress-keda": [
        *("--set", "ingress.enabled=true"),
        *("--set", "ingress.className=nginx"),
        *("--set", "placer.keda.enabled=true"),
        *("--set", "tracing.otlpEndpoint=otel-collector.monitoring:4318"),
        *("--set", "api.apiKeysSecret=order-api-keys"),
        *("--set", "metrics.serviceMonitor.enabled=true"),
        *("--set", "metrics.rules.enabled=true"),
        *("--set", "metrics.dashboard.enabled=true"),
    ],
    # Managed stores (Redis over TLS with an ACL user, at known addresses), images pinned by
    # digest, token Secrets of one's own (GitOps), priority classes, extra policy rules.
    "managed": [
        *("--set", "stateStore.type=redis"),
        *("--set", "redis.enableTLS=true"),
        *("--set", "redis.usernameKey=redis-username"),
        *("--set", f"image.digest.api={DIGEST}"),
        *("--set", f"image.digest.placer={DIGEST}"),
        *("--set", "api.priorityClassName=orders-critical"),
        *("--set", "placer.priorityClassName=orders-critical"),
        *("--set", "dapr.tokensSecret=orders-dapr-api-token"),
        *("--set", "dapr.appTokenSecret=orders-dapr-app-token"),
        *("--set", "orderSigningKeySecret=orders-order-signing-key"),
        *("--set", "networkPolicy.egress.storeCIDRs={10.20.0.0/16}"),
        *("--set", "tracing.otlpEndpoint=otel-collector.monitoring:4318"),
        *("--set-json", f"networkPolicy.placer.extraEgress={json.dumps([EXCHANGE_EGRESS])}"),
        *("--set-json", f"networkPolicy.api.extraIngress={json.dumps([GATEWAY_INGRESS])}"),
    ],
}
# The Prometheus Operator whose CRDs (ServiceMonitor, PrometheusRule) the chart is checked on.
PROMETHEUS_OPERATOR = "github.com/prometheus-operator/prometheus-operator@v0.85.0"


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binaries.helm()), *args], capture_output=True, text=True, timeout=120, check=False
    )


def render(*args: str) -> list[dict[str, Any]]:
    result = helm(
        "template", RELEASE, str(CHART), "--namespace", "orders",
        "--kube-version", KUBERNETES_VERSION, *args,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def of_kind(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [manifest for manifest in manifests if manifest["kind"] == kind]


def dapr_crd_schemas() -> dict[str, dict[str, Any]]:
    """openAPIV3Schema by kind, from the CRDs shipped in the Dapr runtime's Go module (the
    version daprd is built from)."""
    crds = _go_module("github.com/dapr/dapr") / "charts" / "dapr" / "crds"
    return _crd_schemas(sorted(crds.glob("*.yaml")))


def prometheus_operator_crd_schemas() -> dict[str, dict[str, Any]]:
    """openAPIV3Schema by kind, from the CRDs in the Prometheus Operator's Go module."""
    crds = _go_module(PROMETHEUS_OPERATOR) / "example" / "prometheus-operator-crd"
    kinds = ("servicemonitors", "prometheusrules")
    return _crd_schemas([crds / f"monitoring.coreos.com_{kind}.yaml" for kind in kinds])


def _go_module(module: str) -> Path:
    """A Go module's files, from the module proxy (cached by Go)."""
    download = subprocess.run(
        ["go", "mod", "download", "-json", module],
        cwd=binaries.DAPRD_MODULE, capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    return Path(json.loads(download.stdout)["Dir"])


def _crd_schemas(paths: list[Path]) -> dict[str, dict[str, Any]]:
    schemas = {}
    for path in paths:
        crd = yaml.safe_load(path.read_text())
        version = next(v for v in crd["spec"]["versions"] if v.get("served", True))
        schemas[crd["spec"]["names"]["kind"]] = version["schema"]["openAPIV3Schema"]
    return schemas
