"""The chart's hardening, rendered: pod security, spreading, tokens, the sidecars' API
allow-lists, Redis TLS and ACL user, image digests, and what the NetworkPolicies let through.
Each piece renders as intended when on, and is absent when off."""

import copy
import json
from typing import Any

import pytest
import yaml

from tests.chart.network_policy import Endpoint, allows
from tests.chart.pod_security import restricted_violations
from tests.chart.rendering import CHART, DIGEST, PROFILES, of_kind, render

APPS = ("api", "placer")
POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}


@pytest.fixture(scope="module")
def default() -> list[dict[str, Any]]:
    return render()


@pytest.fixture(scope="module")
def managed() -> list[dict[str, Any]]:
    return render(*PROFILES["managed"])


def app_deployments(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The two apps' Deployments, by component."""
    deployments = of_kind(manifests, "Deployment")
    return {app: next(d for d in deployments if d["metadata"]["name"] == f"order-service-{app}")
            for app in APPS}  # fmt: skip


def pod_of(deployment: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


def env_of(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in pod_of(deployment)["containers"][0]["env"]}


def injected(pod: dict[str, Any]) -> dict[str, Any]:
    """The pod as Dapr's sidecar injector (1.18, with sidecarDropALLCapabilities) makes it: the
    daprd container's security context and its projected sentry token volume, as
    pkg/injector/patcher builds them. The daprd container sets no seccomp profile of its own:
    the pod's is what makes it pass."""
    pod = copy.deepcopy(pod)
    pod["containers"].append({
        "name": "daprd",
        "securityContext": {
            "allowPrivilegeEscalation": False, "runAsNonRoot": True,
            "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
        },
        "ports": [{"containerPort": port} for port in (3500, 50001, 50002, 9090)],
    })  # fmt: skip
    token = {"serviceAccountToken": {"audience": "spiffe://cluster.local/ns/dapr-system/dapr-sentry",
                                     "expirationSeconds": 7200, "path": "token"}}  # fmt: skip
    pod["volumes"].append({"name": "dapr-identity-token", "projected": {"sources": [token]}})
    return pod


# Pod security


@pytest.mark.parametrize("profile", list(PROFILES))
def test_every_pod_passes_the_restricted_pod_security_standard(profile: str) -> None:
    manifests = render(*PROFILES[profile])
    pods = {m["metadata"]["name"]: pod_of(m) for m in manifests if m["kind"] in POD_KINDS}
    pods |= {m["metadata"]["name"]: m["spec"] for m in of_kind(manifests, "Pod")}
    assert len(pods) >= 2
    for name in app_deployments(manifests):
        pods[f"order-service-{name}"] = injected(pods[f"order-service-{name}"])
    for name, pod in pods.items():
        assert restricted_violations(pod) == [], name


def test_the_restricted_check_catches_a_pod_that_breaks_it(default: list[dict[str, Any]]) -> None:
    pod = injected(pod_of(app_deployments(default)["api"]))
    del pod["securityContext"]["seccompProfile"]
    pod["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    pod["containers"][0]["securityContext"]["privileged"] = True
    problems = restricted_violations(pod)
    assert "volume host: ['hostPath']" in problems
    assert "api: privileged" in problems
    # Without the pod's seccomp profile, the injected sidecar has none either.
    assert "daprd: no RuntimeDefault or Localhost seccomp profile" in problems


def test_pods_mount_no_kubernetes_api_token(default: list[dict[str, Any]]) -> None:
    [account] = of_kind(default, "ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    for deployment in app_deployments(default).values():
        assert pod_of(deployment)["automountServiceAccountToken"] is False
        # Without a token the sidecar's built-in Kubernetes secret store cannot start, and
        # daprd would exit; the operator resolves the components' secrets instead.
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["dapr.io/disable-builtin-k8s-secret-store"] == "true"


# Scheduling


def test_pods_spread_softly_over_nodes_and_zones_by_default(default: list[dict[str, Any]]) -> None:
    for deployment in app_deployments(default).values():
        constraints = pod_of(deployment)["topologySpreadConstraints"]
        own_pods = deployment["spec"]["selector"]
        assert [(c["topologyKey"], c["whenUnsatisfiable"], c["labelSelector"], c["maxSkew"])
                for c in constraints] == [
            ("kubernetes.io/hostname", "ScheduleAnyway", own_pods, 1),
            ("topology.kubernetes.io/zone", "ScheduleAnyway", own_pods, 1),
        ]  # fmt: skip


def test_spread_constraints_can_be_replaced_or_turned_off() -> None:
    mine = {"maxSkew": 2, "topologyKey": "rack", "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"tier": "orders"}}}  # fmt: skip
    rendered = app_deployments(render(
        "--set-json", "api.topologySpreadConstraints=[]",
        "--set-json", f"placer.topologySpreadConstraints={json.dumps([mine])}",
    ))  # fmt: skip
    assert "topologySpreadConstraints" not in pod_of(rendered["api"])
    assert pod_of(rendered["placer"])["topologySpreadConstraints"] == [mine]


def test_priority_class_only_when_set(
    default: list[dict[str, Any]], managed: list[dict[str, Any]]
) -> None:
    for deployment in app_deployments(default).values():
        assert "priorityClassName" not in pod_of(deployment)
    for deployment in app_deployments(managed).values():
        assert pod_of(deployment)["priorityClassName"] == "orders-critical"


# Images


def test_images_are_pinned_by_digest_when_one_is_set(
    default: list[dict[str, Any]], managed: list[dict[str, Any]]
) -> None:
    def images(manifests: list[dict[str, Any]]) -> dict[str, str]:
        return {app: pod_of(d)["containers"][0]["image"]
                for app, d in app_deployments(manifests).items()}  # fmt: skip

    repository = "ghcr.io/example/order-service"
    assert images(default) == {app: f"{repository}/order-{app}:0.1.0" for app in APPS}
    assert images(managed) == {app: f"{repository}/order-{app}@{DIGEST}" for app in APPS}
    # A full reference of one's own wins over the digest.
    assert images(render("--set", f"image.digest.api={DIGEST}", "--set", "image.api=mine:1")) == {
        "api": "mine:1", "placer": f"{repository}/order-placer:0.1.0",
    }  # fmt: skip


# Tokens


def test_tokens_each_have_a_secret_of_their_own(default: list[dict[str, Any]]) -> None:
    """Dapr's injector reads the key `token` of the Secret each annotation names: the API token
    and the app token need a Secret each."""
    secrets = {s["metadata"]["name"]: s for s in of_kind(default, "Secret")}
    assert set(secrets) == {
        "order-service-dapr-tokens",
        "order-service-dapr-app-token",
        "order-service-order-signing-key",
    }
    for secret in secrets.values():
        assert set(secret["data"]) == {"token"}
        assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    deployments = app_deployments(default)
    placer = deployments["placer"]["spec"]["template"]["metadata"]["annotations"]
    assert placer["dapr.io/app-token-secret"] == "order-service-dapr-app-token"
    app_token = {"name": "order-service-dapr-app-token", "key": "token"}
    assert env_of(deployments["placer"])["APP_API_TOKEN"]["valueFrom"]["secretKeyRef"] == app_token
    api_token = {"name": "order-service-dapr-tokens", "key": "token"}
    for deployment in deployments.values():
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["dapr.io/api-token-secret"] == "order-service-dapr-tokens"
        assert env_of(deployment)["DAPR_API_TOKEN"]["valueFrom"]["secretKeyRef"] == api_token
    # The API takes no calls from its sidecar that need a token.
    assert "dapr.io/app-token-secret" not in deployments["api"]["spec"]["template"]["metadata"][
        "annotations"]  # fmt: skip
    assert "APP_API_TOKEN" not in env_of(deployments["api"])


def test_both_apps_share_the_key_of_the_orders_signatures(default: list[dict[str, Any]]) -> None:
    key = {"name": "order-service-order-signing-key", "key": "token"}
    for deployment in app_deployments(default).values():
        assert env_of(deployment)["ORDER_SIGNING_KEY"]["valueFrom"]["secretKeyRef"] == key


def test_token_secrets_of_ones_own_replace_the_generated_ones(
    managed: list[dict[str, Any]],
) -> None:
    assert of_kind(managed, "Secret") == []
    deployments = app_deployments(managed)
    placer = deployments["placer"]
    assert placer["spec"]["template"]["metadata"]["annotations"]["dapr.io/app-token-secret"] == (
        "orders-dapr-app-token"
    )
    assert env_of(placer)["APP_API_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == (
        "orders-dapr-app-token"
    )
    for deployment in deployments.values():
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["dapr.io/api-token-secret"] == "orders-dapr-api-token"
        signing_key = env_of(deployment)["ORDER_SIGNING_KEY"]["valueFrom"]["secretKeyRef"]
        assert signing_key["name"] == "orders-order-signing-key"


# The sidecars' configuration


def test_each_sidecar_serves_only_the_apis_its_app_uses(default: list[dict[str, Any]]) -> None:
    configurations = {c["metadata"]["name"]: c["spec"] for c in of_kind(default, "Configuration")}
    expected = {"api": ["state"], "placer": ["state", "publish"]}
    for app, deployment in app_deployments(default).items():
        spec = configurations[deployment["spec"]["template"]["metadata"]["annotations"][
            "dapr.io/config"]]  # fmt: skip
        assert spec["accessControl"] == {"defaultAction": "deny"}
        allowed = {(rule["name"], rule["version"], rule["protocol"])
                   for rule in spec["api"]["allowed"]}  # fmt: skip
        assert allowed == {(name, "v1.0", "http") for name in expected[app]} | {
            (name, "v1", "grpc") for name in expected[app]
        }


# Redis


def redis_components(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["metadata"]["name"]: {item["name"]: item for item in c["spec"]["metadata"]}
            for c in of_kind(manifests, "Component")
            if c["spec"]["type"] in {"pubsub.redis", "state.redis"}}  # fmt: skip


def test_redis_tls_and_acl_user_only_when_set(
    default: list[dict[str, Any]], managed: list[dict[str, Any]]
) -> None:
    for metadata in redis_components(default).values():
        assert "enableTLS" not in metadata and "redisUsername" not in metadata
    components = redis_components(managed)
    # Both pub/sub components and, with stateStore.type=redis, the three state stores.
    assert len(components) == 5
    for metadata in components.values():
        assert metadata["enableTLS"] == {"name": "enableTLS", "value": "true"}
        assert metadata["redisUsername"]["secretKeyRef"] == {
            "name": "order-service-stores", "key": "redis-username",
        }  # fmt: skip


def test_keda_reaches_redis_as_the_sidecars_do() -> None:
    manifests = render(*PROFILES["managed"], "--set", "placer.keda.enabled=true")
    [scaled] = of_kind(manifests, "ScaledObject")
    assert scaled["spec"]["triggers"][0]["metadata"]["enableTLS"] == "true"
    [authentication] = of_kind(manifests, "TriggerAuthentication")
    parameters = {ref["parameter"]: ref["key"] for ref in authentication["spec"]["secretTargetRef"]}
    assert parameters == {"address": "redis-host", "username": "redis-username",
                          "password": "redis-password"}  # fmt: skip


# NetworkPolicies

RELEASE = {"app.kubernetes.io/name": "order-service", "app.kubernetes.io/instance": "order-service"}


def pod(component: str, ip: str = "10.244.0.9") -> Endpoint:
    """A pod of this release."""
    return Endpoint(ip, "orders", {**RELEASE, "app.kubernetes.io/component": component})


DNS = Endpoint("10.244.0.2", "kube-system", {"k8s-app": "kube-dns"})
SENTRY = Endpoint("10.244.0.3", "dapr-system", {"app": "dapr-sentry"})
CONTROL_PLANE_PORTS = {"sentry": 50001, "operator": 6500, "placement": 50005, "scheduler": 50006}
STRANGER = Endpoint("10.244.0.7", "orders", {"app": "something-else"})
INGRESS = Endpoint("10.244.0.4", "ingress-nginx", {"app": "ingress-nginx"})
SCRAPER = Endpoint("10.244.0.5", "monitoring", {"app": "prometheus"})
SIDECAR_PORTS = (3500, 50001, 50002)  # HTTP and gRPC API, Dapr-to-Dapr


def policies(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    by_name = {p["metadata"]["name"]: p for p in of_kind(manifests, "NetworkPolicy")}
    return {app: by_name[f"order-service-{app}"] for app in APPS}


def test_apps_reach_dns_dapr_and_the_dev_stores_and_nothing_else() -> None:
    """The development profile with policies on, as on a cluster that enforces them: each
    app reaches the cluster DNS, Dapr's control plane and this release's stores; not another
    pod, not the other app's sidecar, not the internet."""
    dev = render(*PROFILES["dev"], "--set", "networkPolicy.enabled=true")
    for app, policy in policies(dev).items():
        assert allows(policy, "egress", DNS, 53, "UDP") and allows(policy, "egress", DNS, 53)
        for port in CONTROL_PLANE_PORTS.values():
            assert allows(policy, "egress", SENTRY, port), (app, port)
        assert allows(policy, "egress", pod("redis"), 6379)
        assert allows(policy, "egress", pod("postgresql"), 5432)
        assert not allows(policy, "egress", STRANGER, 6379)
        assert not allows(policy, "egress", pod("redis"), 5432)
        other = pod("placer" if app == "api" else "api")
        assert not any(allows(policy, "egress", other, port) for port in SIDECAR_PORTS)
        assert not allows(policy, "egress", Endpoint("203.0.113.5"), 443)
        # The development profile's shared exchange stand-in: the placer's, on its port only.
        assert allows(policy, "egress", pod("exchange"), 8080) is (app == "placer")
        assert not allows(policy, "egress", pod("exchange"), 9464)


def test_only_the_placer_reaches_the_exchange_stand_in() -> None:
    """The hook for the shared exchange stand-in: its pods carry the release's labels and
    app.kubernetes.io/component: exchange."""
    rendered = policies(render(*PROFILES["dev"], "--set", "networkPolicy.enabled=true",
                               "--set", "exchange.enabled=true"))  # fmt: skip
    assert allows(rendered["placer"], "egress", pod("exchange"), 8080)
    assert not allows(rendered["api"], "egress", pod("exchange"), 8080)


def test_managed_stores_collector_and_extra_rules(
    default: list[dict[str, Any]], managed: list[dict[str, Any]]
) -> None:
    anywhere = Endpoint("10.1.2.3")
    for policy in policies(default).values():
        assert allows(policy, "egress", anywhere, 6379) and allows(policy, "egress", anywhere, 5432)
        assert not allows(policy, "egress", anywhere, 443)
        assert not allows(policy, "egress", anywhere, 4318)  # no tracing, no collector
    rendered = policies(managed)
    for policy in rendered.values():
        assert allows(policy, "egress", Endpoint("10.20.1.1"), 6379)
        assert not allows(policy, "egress", Endpoint("10.30.1.1"), 6379)
        assert not allows(policy, "egress", Endpoint("10.20.1.1"), 5432)  # Redis state store
        assert allows(policy, "egress", Endpoint("10.96.7.7", "monitoring", {}), 4318)
    exchange = Endpoint("192.0.2.10")
    assert allows(rendered["placer"], "egress", exchange, 443)
    assert not allows(rendered["api"], "egress", exchange, 443)
    gateway = Endpoint("10.244.1.1", "gateway", {})
    assert allows(rendered["api"], "ingress", gateway, 8000)
    assert not allows(rendered["placer"], "ingress", gateway, 8000)


def test_only_the_ingress_controller_release_pods_and_scrapers_get_in(
    default: list[dict[str, Any]],
) -> None:
    api, placer = policies(default).values()
    assert allows(api, "ingress", INGRESS, 8000) and allows(api, "ingress", pod("placer"), 8000)
    assert not allows(api, "ingress", STRANGER, 8000)
    for policy in (api, placer):
        assert allows(policy, "ingress", SCRAPER, 9464) and allows(policy, "ingress", SCRAPER, 9090)
        assert not allows(policy, "ingress", STRANGER, 9090)
        for source in (INGRESS, SCRAPER, pod("api"), pod("placer")):
            assert not any(allows(policy, "ingress", source, port) for port in SIDECAR_PORTS)
    assert not allows(placer, "ingress", pod("api"), 8002)  # the placer's deliveries


def test_egress_can_be_left_open() -> None:
    for policy in policies(render("--set", "networkPolicy.egress.enabled=false")).values():
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        assert "egress" not in policy["spec"]


def test_no_network_policies_when_off() -> None:
    assert of_kind(render("--set", "networkPolicy.enabled=false"), "NetworkPolicy") == []


# Packaging


def test_chart_says_where_it_comes_from_and_what_it_needs() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["home"].startswith("https://") and chart["sources"]
    assert chart["maintainers"][0]["name"]
    assert chart["kubeVersion"] == ">=1.27.0-0"
    assert chart["annotations"]["order-service/dapr-version"] == "1.18"
    ignored = (CHART / ".helmignore").read_text().splitlines()
    assert ".git/" in ignored and "/tests/" in ignored
