"""The chart's Dapr wiring is real: its rendered components boot a real daprd and an order goes
through the API and the placer on them."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.config import StateStoreKind
from devstack.processes import ProcessGroup
from placer.stock_exchange import ExchangeLedger
from tests.chart.rendering import of_kind, render
from tests.factories import limit_order_body
from tests.integration.stack_fixtures import Stores, running_stack, start_stores
from tests.polling import wait_for

APP_IDS = ("order-service-api", "order-service-placer")
CHART_STATE_STORE = {StateStoreKind.REDIS: "redis", StateStoreKind.POSTGRES: "postgresql"}


def local_secrets(stores: Stores) -> dict[str, str]:
    """What the chart's Secret would hold, pointing at this test's stores."""
    endpoints = stores.endpoints()
    return {
        "redis-host": endpoints.redis_host,
        "redis-password": "",
        "postgresql-connection-string": endpoints.postgres_connection_string,
    }


def resolve_secrets(component: dict[str, Any], secrets: dict[str, str]) -> dict[str, Any]:
    for item in component["spec"]["metadata"]:
        reference = item.pop("secretKeyRef", None)
        if reference is not None:
            item["value"] = secrets[reference["key"]]
    return component


def app_settings(manifests: list[dict[str, Any]]) -> dict[str, str]:
    """The plain environment the chart gives the API (Dapr names both apps must agree on)."""
    [api] = [d for d in of_kind(manifests, "Deployment") if d["metadata"]["name"].endswith("-api")]
    [container] = api["spec"]["template"]["spec"]["containers"]
    return {item["name"]: item["value"] for item in container["env"] if "value" in item}


def write_chart_components(target: Path, manifests: list[dict[str, Any]], stores: Stores) -> Path:
    """Lays out the chart's Dapr resources as daprd's resources folders expect them."""
    common = target / "common"
    common.mkdir(parents=True)
    (target / stores.kind.value).mkdir()
    secrets = local_secrets(stores)
    components = [resolve_secrets(c, secrets) for c in of_kind(manifests, "Component")]
    for resource in components + of_kind(manifests, "Resiliency"):
        path = common / f"{resource['kind'].lower()}-{resource['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(resource))
    [configuration] = of_kind(manifests, "Configuration")
    (target / "config.yaml").write_text(yaml.safe_dump(configuration))
    return target


@pytest.mark.parametrize("kind", list(StateStoreKind), ids=lambda kind: kind.value)
def test_order_is_placed_on_the_charts_components(kind: StateStoreKind, tmp_path: Path) -> None:
    manifests = render("--set", f"stateStore.type={CHART_STATE_STORE[kind]}")
    with ProcessGroup(tmp_path) as stores_group:
        stores = start_stores(stores_group, kind, tmp_path / "data")
        components = write_chart_components(tmp_path / "components", manifests, stores)
        env = {
            **app_settings(manifests),
            "EXCHANGE_FAILURE_RATE": "0",
            "EXCHANGE_LATENCY_SECONDS": "0.05",
        }
        with running_stack(
            tmp_path / "stack", kind, stores=stores, components=components,
            app_env=env, app_ids=APP_IDS,
        ) as stack:  # fmt: skip
            response = stack.client.post("/orders", json=limit_order_body())
            assert response.status_code == 201
            order_id = response.json()["id"]
            assert stores.stored_order(order_id) is not None
            wait_for(
                lambda: order_id in ExchangeLedger(stack.ledger_path).submissions(),
                what="order placed through the chart's components",
                timeout_seconds=30,
            )
            assert stack.client.get(f"/orders/{order_id}").json()["status"] in {
                "accepted",
                "placed",
            }
