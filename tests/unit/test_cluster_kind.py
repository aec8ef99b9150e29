"""The kind cluster's node networking, as `up` sets it."""

import json

import pytest
import yaml

from cluster import kind
from cluster.docker import Engine


def test_the_unreachable_route_covers_the_pod_subnet(monkeypatch: pytest.MonkeyPatch) -> None:
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
    kind._pod_subnet_unreachable(Engine(host=None, ours=False))
    assert commands == [("exec", "order-service-control-plane",
                         "ip", "route", "replace", "unreachable", "10.244.0.0/16")]  # fmt: skip
