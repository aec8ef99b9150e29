"""What a rendered NetworkPolicy lets through, as the Kubernetes NetworkPolicy API defines it:
enough to ask "may this pod reach that one on this port" of the chart's policies without a
cluster (whether a cluster's network plugin enforces them is for the cluster tests)."""

import ipaddress
from dataclasses import dataclass, field
from typing import Any

NAMESPACE_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Endpoint:
    """One end of a connection: a pod (its namespace and labels, and its address), or an
    address outside the cluster (no namespace)."""

    ip: str
    namespace: str | None = None
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def namespace_labels(self) -> dict[str, str]:
        return {NAMESPACE_LABEL: self.namespace} if self.namespace else {}


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, f"only matchLabels is understood: {selector}"
    wanted: dict[str, str] = selector.get("matchLabels", {})
    return wanted.items() <= labels.items()


def peer_matches(peer: dict[str, Any], other: Endpoint, policy_namespace: str) -> bool:
    if "ipBlock" in peer:
        address = ipaddress.ip_address(other.ip)
        block = peer["ipBlock"]
        excepted = any(address in ipaddress.ip_network(cidr) for cidr in block.get("except", []))
        return address in ipaddress.ip_network(block["cidr"]) and not excepted
    if other.namespace is None:
        return False  # selectors name pods, never addresses outside the cluster
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], other.namespace_labels):
            return False
    elif other.namespace != policy_namespace:
        return False  # a podSelector alone: pods of the policy's namespace
    return selects(peer.get("podSelector", {}), other.labels)


def port_matches(rule_port: dict[str, Any], port: int, protocol: str) -> bool:
    if rule_port.get("protocol", "TCP") != protocol:
        return False
    if "port" not in rule_port:
        return True
    first = rule_port["port"]
    assert isinstance(first, int), "named ports are not understood"
    last: int = rule_port.get("endPort", first)
    return first <= port <= last


def allows(
    policy: dict[str, Any], direction: str, other: Endpoint, port: int, protocol: str = "TCP"
) -> bool:
    """Whether `policy` lets its pods send to (direction "egress") or receive from ("ingress")
    `other` on `port`. A policy without that direction in its policyTypes lets everything."""
    spec = policy["spec"]
    if direction.capitalize() not in spec["policyTypes"]:
        return True
    peers_key = "to" if direction == "egress" else "from"
    namespace = policy["metadata"].get("namespace", "orders")
    for rule in spec.get(direction, []):
        peers = rule.get(peers_key)
        ports = rule.get("ports")
        peer_ok = peers is None or any(peer_matches(p, other, namespace) for p in peers)
        port_ok = ports is None or any(port_matches(p, port, protocol) for p in ports)
        if peer_ok and port_ok:
            return True
    return False
