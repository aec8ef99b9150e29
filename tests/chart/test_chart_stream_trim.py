"""The placers trim the topics' Redis streams (`streamTrim`) and hand back stranded deliveries
(`strandedHandback`): they reach the Redis the pub/sub components use, from the same Secret, as
settings the placer accepts."""

from typing import Any

import pytest

from core.config import Settings
from tests.chart.network_policy import Endpoint, allows
from tests.chart.rendering import PROFILES, of_kind, render


def container_env(manifests: list[dict[str, Any]], app: str) -> dict[str, dict[str, Any]]:
    [deployment] = [
        d for d in of_kind(manifests, "Deployment") if d["metadata"]["name"].endswith(f"-{app}")
    ]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item for item in container["env"]}


def pubsub_metadata(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The orders pub/sub component's metadata items, by name."""
    [pubsub] = [c for c in of_kind(manifests, "Component")
                if c["metadata"]["name"].endswith("-orderpubsub")]  # fmt: skip
    return {item["name"]: item for item in pubsub["spec"]["metadata"]}


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_the_placer_trims_the_redis_its_sidecar_publishes_to(profile: str) -> None:
    manifests = render(*PROFILES[profile])
    env = container_env(manifests, "placer")
    references = {
        name: item["valueFrom"]["secretKeyRef"]
        for name, item in env.items()
        if name.startswith("STREAMS_REDIS_") and "valueFrom" in item
    }
    component = pubsub_metadata(manifests)
    expected = {
        f"STREAMS_REDIS_{setting}": component[name]["secretKeyRef"]
        for setting, name in (("HOST", "redisHost"), ("PASSWORD", "redisPassword"),
                              ("USERNAME", "redisUsername"))
        if name in component
    }  # fmt: skip
    assert references == expected
    tls = "enableTLS" in component
    assert tls is (profile == "managed")
    assert env["STREAMS_REDIS_TLS"]["value"] == str(tls).lower()
    # The plain values are settings the placer takes.
    plain = {name: item["value"] for name, item in env.items() if "value" in item}
    settings = Settings(_env_file=None, **plain, STREAMS_REDIS_HOST="redis:6379")
    assert settings.STREAMS_REDIS_TLS is tls
    assert settings.STREAM_TRIM_INTERVAL_SECONDS == 10
    assert settings.STREAM_TRIM_TIMEOUT_SECONDS == 5
    assert not any(name.startswith("STREAM") for name in container_env(manifests, "api"))


def test_the_interval_and_the_deadline_are_values() -> None:
    manifests = render(
        "--set-json", "streamTrim.intervalSeconds=2.5", "--set-json", "streamTrim.timeoutSeconds=1"
    )  # fmt: skip
    env = container_env(manifests, "placer")
    assert env["STREAM_TRIM_INTERVAL_SECONDS"]["value"] == "2.5"
    assert env["STREAM_TRIM_TIMEOUT_SECONDS"]["value"] == "1"


def test_the_hand_back_of_stranded_deliveries_comes_with_the_trimming() -> None:
    default = {
        name: item["value"]
        for name, item in container_env(render(), "placer").items()
        if name.startswith("STRANDED_")
    }
    settings = Settings(_env_file=None, **default)
    assert (settings.STRANDED_CHECK_INTERVAL_SECONDS, settings.STRANDED_AFTER_SECONDS) == (10, 30)
    manifests = render(
        "--set-json", "strandedHandback.checkIntervalSeconds=0",
        "--set-json", "strandedHandback.afterSeconds=45",
    )  # fmt: skip
    env = container_env(manifests, "placer")
    assert env["STRANDED_CHECK_INTERVAL_SECONDS"]["value"] == "0"  # off
    assert env["STRANDED_AFTER_SECONDS"]["value"] == "45"


def test_off_the_placer_gets_no_redis_connection() -> None:
    env = container_env(render("--set", "streamTrim.enabled=false"), "placer")
    assert not any(name.startswith(("STREAM", "STRANDED")) for name in env)


def test_the_placers_policy_lets_it_reach_redis() -> None:
    """The same rule as for its sidecar: the trimming needs no rule of its own."""
    [policy] = [p for p in of_kind(render(), "NetworkPolicy")
                if p["metadata"]["name"].endswith("-placer")]  # fmt: skip
    assert allows(policy, "egress", Endpoint("10.1.2.3"), 6379)
