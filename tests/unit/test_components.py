"""The Dapr components in components/ say what the runtime reads: a setting it cannot parse is
not refused, it silently keeps its default."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.stack import COMPONENTS_DIR


def redis_pubsubs(folder: Path) -> dict[str, dict[str, Any]]:
    """The metadata of each Redis pub/sub component in `folder`, by file."""
    found = {}
    for path in sorted(folder.rglob("*.yaml")):
        for resource in yaml.safe_load_all(path.read_text()):
            if resource.get("kind") == "Component" and resource["spec"]["type"] == "pubsub.redis":
                metadata = resource["spec"]["metadata"]
                found[path.name] = {item["name"]: item.get("value") for item in metadata}
    return found


def redeliver_interval_problems(metadata: dict[str, Any]) -> list[str]:
    """Why the runtime would not use this component's redeliverInterval: it reads a number of
    milliseconds and drops anything else (docs/runtime-defects.md, defect 6)."""
    value = metadata.get("redeliverInterval")
    if value is None:
        return ["no redeliverInterval: the runtime's default (15 s) would apply unsaid"]
    if not str(value).isdigit() or int(value) == 0:
        return [f"redeliverInterval {value!r} is not a positive number of milliseconds"]
    return []


def test_both_redis_pubsubs_set_their_redelivery_check_in_milliseconds() -> None:
    pubsubs = redis_pubsubs(COMPONENTS_DIR)
    assert pubsubs.keys() == {"pubsub.yaml", "outbox-pubsub.yaml"}
    for name, metadata in pubsubs.items():
        assert redeliver_interval_problems(metadata) == [], name


@pytest.mark.parametrize(
    ("value", "usable"), [("15000", True), ("30s", False), ("1m", False), ("0", False)]
)
def test_a_duration_string_is_caught(value: str, usable: bool) -> None:
    assert (redeliver_interval_problems({"redeliverInterval": value}) == []) is usable
