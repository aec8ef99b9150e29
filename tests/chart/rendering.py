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

# Every values profile the chart ships or documents, as `helm template` arguments.
PROFILES: dict[str, list[str]] = {
    "default": [],
    "dev": ["-f", str(CHART / "values-dev.yaml")],
    "redis-state": ["--set", "stateStore.type=redis"],
    "ingress-keda": [
        *("--set", "ingress.enabled=true"),
        *("--set", "ingress.className=nginx"),
        *("--set", "placer.keda.enabled=true"),
        *("--set", "dapr.tracing.otlpEndpoint=otel:4317"),
        *("--set", "api.apiKeysSecret=order-api-keys"),
    ],
}


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
    """openAPIV3Schema by kind, from the CRDs shipped in the Dapr runtime's Go module."""
    download = subprocess.run(
        ["go", "mod", "download", "-json", "github.com/dapr/dapr"],
        cwd=binaries.DAPRD_MODULE, capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    module = json.loads(download.stdout)["Dir"]
    schemas = {}
    for path in sorted((Path(module) / "charts" / "dapr" / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        version = next(v for v in crd["spec"]["versions"] if v.get("served", True))
        schemas[crd["spec"]["names"]["kind"]] = version["schema"]["openAPIV3Schema"]
    return schemas
