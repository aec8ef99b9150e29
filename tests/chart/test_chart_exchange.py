"""The shared exchange stand-in in the chart (`exchange.enabled`, on in the development
profile): one locked-down pod from the placer's image, the placers pointed at it, and only the
placers let in."""

import shutil
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.chart.rendering import CHART, KUBERNETES_VERSION, RELEASE, helm, of_kind, render

DEV = ["-f", str(CHART / "values-dev.yaml")]
LOCKED_DOWN = [*DEV, "--set", "networkPolicy.enabled=true"]
PERSISTENT = [*DEV, "--set", "exchange.persistence.enabled=true"]
NAME = f"{RELEASE}-exchange"


def named(manifests: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [m for m in of_kind(manifests, kind) if m["metadata"]["name"] == name]
    return found


def container_of(deployment: dict[str, Any]) -> dict[str, Any]:
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container["env"] if "value" in item}


def exchange_objects(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in manifests if m["metadata"]["name"].startswith(NAME)]


@pytest.mark.parametrize("values", [DEV, LOCKED_DOWN, PERSISTENT], ids=["dev", "netpol", "pvc"])
def test_the_stand_ins_objects_match_the_kubernetes_schemas(values: list[str]) -> None:
    objects = exchange_objects(render(*values))
    assert {m["kind"] for m in objects} >= {"Deployment", "Service"}
    for manifest in objects:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def test_the_placers_call_the_stand_in_through_its_service_within_their_deadline() -> None:
    manifests = render(*DEV)
    stand_in = named(manifests, "Deployment", NAME)
    service = named(manifests, "Service", NAME)
    placer = container_of(named(manifests, "Deployment", f"{RELEASE}-placer"))
    settings = env_of(placer)
    [port] = service["spec"]["ports"]
    assert (settings["EXCHANGE_URL"], port["port"]) == (f"http://{NAME}", 80)
    [container_port] = container_of(stand_in)["ports"]
    assert port["targetPort"] == container_port["name"]
    assert service["spec"]["selector"].items() <= (
        stand_in["spec"]["template"]["metadata"]["labels"].items()
    )
    # A timed-out call must end before the sidecar's own deadline for the delivery.
    resiliency = named(manifests, "Resiliency", f"{RELEASE}-placement")
    attempt_timeout = resiliency["spec"]["policies"]["timeouts"]["placementAttempt"]
    assert float(settings["EXCHANGE_TIMEOUT_SECONDS"]) < float(attempt_timeout.removesuffix("s"))


def test_it_runs_once_from_the_placers_image_with_its_own_command() -> None:
    manifests = render(*DEV)
    stand_in = named(manifests, "Deployment", NAME)
    container = container_of(stand_in)
    placer = container_of(named(manifests, "Deployment", f"{RELEASE}-placer"))
    assert container["image"] == placer["image"]
    assert container["command"] == ["python", "-m", "exchange"]
    # One writer of the ledger, also during a rollout.
    assert (stand_in["spec"]["replicas"], stand_in["spec"]["strategy"]) == (1, {"type": "Recreate"})
    # No Dapr sidecar: it is the exchange, not an app of the release.
    assert "dapr.io/enabled" not in stand_in["spec"]["template"]["metadata"].get("annotations", {})
    settings = env_of(container)
    assert (settings["EXCHANGE_LATENCY_SECONDS"], settings["EXCHANGE_FAILURE_RATE"]) == (
        "0.5",
        "0.1",
    )


@pytest.mark.parametrize("values", [DEV, PERSISTENT], ids=["emptydir", "pvc"])
def test_its_pod_meets_the_restricted_pod_security_standard(values: list[str]) -> None:
    manifests = render(*values)
    pod = named(manifests, "Deployment", NAME)["spec"]["template"]["spec"]
    container = container_of(named(manifests, "Deployment", NAME))
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not {"hostNetwork", "hostPID", "hostIPC"} & pod.keys()
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert "privileged" not in context
    # Restricted allows these volume types only (of those a chart would use).
    for volume in pod["volumes"]:
        assert volume.keys() - {"name"} <= {"emptyDir", "persistentVolumeClaim"}, volume
    # The ledger and the control file are on a writable volume.
    mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
    settings = env_of(container)
    for path in (settings["EXCHANGE_LEDGER_PATH"], settings["EXCHANGE_CONTROL_PATH"]):
        assert str(Path(path).parent) in mounts


def test_a_persistent_ledger_is_on_its_claim() -> None:
    manifests = render(*PERSISTENT)
    claim = named(manifests, "PersistentVolumeClaim", f"{NAME}-ledger")
    pod = named(manifests, "Deployment", NAME)["spec"]["template"]["spec"]
    [ledger] = [volume for volume in pod["volumes"] if volume["name"] == "ledger"]
    assert ledger == {"name": "ledger", "persistentVolumeClaim": {"claimName": f"{NAME}-ledger"}}
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert not of_kind(render(*DEV), "PersistentVolumeClaim")


def test_only_the_placers_pods_may_reach_it() -> None:
    manifests = render(*LOCKED_DOWN)
    policy = named(manifests, "NetworkPolicy", NAME)
    stand_in = named(manifests, "Deployment", NAME)
    placer = named(manifests, "Deployment", f"{RELEASE}-placer")
    labels_of = {
        name: deployment["spec"]["template"]["metadata"]["labels"].items()
        for name, deployment in {"stand-in": stand_in, "placer": placer}.items()
    }
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels_of["stand-in"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    [rule] = policy["spec"]["ingress"]
    [source] = rule["from"]
    assert source.keys() == {"podSelector"}  # no namespace, no address block
    assert source["podSelector"]["matchLabels"].items() <= labels_of["placer"]
    for other in of_kind(manifests, "Deployment"):
        if other["metadata"]["name"] != placer["metadata"]["name"]:
            labels = other["spec"]["template"]["metadata"]["labels"].items()
            assert not source["podSelector"]["matchLabels"].items() <= labels
    assert rule["ports"] == [{"port": container_of(stand_in)["ports"][0]["containerPort"],
                              "protocol": "TCP"}]  # fmt: skip
    unguarded = render(*DEV, "--set", "networkPolicy.enabled=false")
    assert not [m for m in exchange_objects(unguarded) if m["kind"] == "NetworkPolicy"]


def test_the_placers_egress_rule_for_it_selects_its_pod(tmp_path: Path) -> None:
    # The rule that a NetworkPolicy limiting the placer's egress includes.
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "egress-probe.yaml").write_text(
        'egress:\n  {{- include "order-service.exchangeEgress" . | nindent 2 }}\n'
    )
    result = helm(
        "template", RELEASE, str(chart), "--kube-version", KUBERNETES_VERSION, *DEV,
        "--show-only", "templates/egress-probe.yaml",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [rule] = yaml.safe_load(result.stdout)["egress"]
    manifests = render(*DEV)
    labels = named(manifests, "Deployment", NAME)["spec"]["template"]["metadata"]["labels"]
    [destination] = rule["to"]
    assert destination["podSelector"]["matchLabels"].items() <= labels.items()
    assert rule["ports"] == [{"port": 8080, "protocol": "TCP"}]


def test_it_is_off_by_default_and_the_placer_keeps_its_own() -> None:
    manifests = render()
    assert exchange_objects(manifests) == []
    placer = container_of(named(manifests, "Deployment", f"{RELEASE}-placer"))
    assert "EXCHANGE_URL" not in env_of(placer)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("exchange.failureRate=2", "/exchange/failureRate"),
        ("exchange.timeoutSeconds=0", "/exchange/timeoutSeconds"),
        ("exchange.persistence.size=lots", "/exchange/persistence/size"),
        ("exchange.replicas=2", "/exchange"),
    ],
)
def test_values_schema_rejects_bad_stand_in_values(value: str, message: str) -> None:
    result = helm(
        "template", RELEASE, str(CHART), "--kube-version", KUBERNETES_VERSION, "--set", value
    )
    assert result.returncode != 0
    assert message in result.stderr
