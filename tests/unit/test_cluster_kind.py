"""The kind cluster's node networking, as `up` sets it."""

import json

import pytest
import yaml

from cluster import kind
from cluster.docker import Engine


def test_addresses_without_a_pod_or_endpoints_are_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = yaml.safe_load(kind.KIND_CONFIG.read_text())
    conflist = json.loads(kind.KIND_CONFIG.with_name("10-ptp.conflist").read_text())
    ranges = conflist["plugins"][0]["ipam"]["ranges"]
    assert config["networking"]["podSubnet"] == kind.POD_SUBNET
    assert ranges == [[{"subnet": kind.POD_SUBNET}]]
    commands: list[tuple[str, ...]] = []

    def docker(_engine: Engine, *args: str) -> str:
        commands.append(args)
        return ""

    monkeypatch.setattr(kind, "docker", docker)
    kind._unrouted_addresses_unreachable(Engine(host=None, ours=False))
    [(verb, node, shell, option, script)] = commands
    assert (verb, node, shell, option) == ("exec", "order-service-control-plane", "sh", "-c")
    steps = script.split(" && ")
    assert steps[0] == "ip route replace unreachable 10.244.0.0/16"
    assert steps[1] == "ip route replace unreachable 10.96.0.0/16 table 101"
    # The node's own traffic keeps the main table; forwarded traffic to Services without
    # endpoints meets the unreachable route. Rules are replaced, not added again.
    assert steps[-2:] == ["ip rule add pref 100 iif lo lookup main",
                          "ip rule add pref 101 to 10.96.0.0/16 lookup 101"]  # fmt: skip
    assert "while ip rule del pref 101 2>/dev/null; do :; done" in steps
