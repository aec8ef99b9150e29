"""Builds real stacks for the integration tests: daprd, Redis, PostgreSQL, both apps."""

import json
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis
import yaml

from devstack.config import StateStoreKind
from devstack.processes import ProcessGroup, free_port
from devstack.stack import COMPONENTS_DIR, Stack, StackOptions, StoreEndpoints, start_stack
from devstack.stores import PostgresServer, RedisServer, start_postgres, start_redis

KEY_PREFIX = "orders||"


@dataclass
class Stores:
    """The stores of one stack, with direct connections to look behind the sidecar's back."""

    kind: StateStoreKind
    redis: RedisServer
    postgres: PostgresServer | None
    redis_data: Path
    postgres_data: Path
    group: ProcessGroup

    def endpoints(self) -> StoreEndpoints:
        postgres = self.postgres.connection_string if self.postgres else ""
        return StoreEndpoints(redis_host=self.redis.address, postgres_connection_string=postgres)

    def stored_order(self, order_id: str) -> dict[str, Any] | None:
        """The order document as the state store holds it, read without Dapr."""
        return self.stored_orders().get(order_id)

    def stored_orders(self) -> dict[str, dict[str, Any]]:
        """Every order document in the store, by id, read without Dapr."""
        prefix = f"{KEY_PREFIX}order-"
        documents: dict[str, dict[str, Any]] = {}
        if self.kind is StateStoreKind.REDIS:
            with redis.Redis(port=self.redis.port, socket_timeout=5) as client:
                for key in client.scan_iter(f"{prefix}*", count=1000):
                    order_id = key.decode().removeprefix(prefix)
                    value = client.hget(key, "data")
                    if value is not None and not order_id.startswith("events-"):
                        documents[order_id] = dict(json.loads(value))
            return documents
        assert self.postgres is not None
        with psycopg.connect(self.postgres.connection_string) as connection:
            rows = connection.execute(
                "SELECT key, value FROM state WHERE key LIKE %s AND key NOT LIKE %s",
                (f"{prefix}%", f"{prefix}events-%"),
            ).fetchall()
        for key, value in rows:
            document = value if isinstance(value, dict) else json.loads(bytes(value))
            documents[key.removeprefix(prefix)] = dict(document)
        return documents

    def stored_order_count(self) -> int:
        return len(self.stored_orders())

    def restart_redis(self) -> None:
        self.redis = start_redis(self.group, self.redis_data, self.redis.port)

    def restart_postgres(self) -> None:
        assert self.postgres is not None
        self.postgres = start_postgres(self.group, self.postgres_data, self.postgres.port)


def start_stores(group: ProcessGroup, kind: StateStoreKind, data_dir: Path) -> Stores:
    redis_data, postgres_data = data_dir / "redis", data_dir / "postgres"
    redis_server = start_redis(group, redis_data, free_port())
    postgres = None
    if kind is StateStoreKind.POSTGRES:
        postgres = start_postgres(group, postgres_data, free_port())
    return Stores(kind, redis_server, postgres, redis_data, postgres_data, group)


# For tests that count a failing order's attempts under fast_retry_components: one exchange call
# a delivery (no repeats at once), so that the count is the policy's and a few failing orders do
# not open the breaker.
ONE_CALL_A_DELIVERY = {"PLACER_RETRIES_AT_ONCE": "0"}


def fast_retry_components(target: Path) -> Path:
    """A copy of components/ whose retry policy gives up after a second or so, for tests
    that wait for dead letters. Everything else is as shipped."""
    shutil.copytree(COMPONENTS_DIR, target)
    resiliency_path = target / "common" / "resiliency.yaml"
    placement, *others = yaml.safe_load_all(resiliency_path.read_text())
    placement["spec"]["policies"]["retries"]["placementRetry"].update(
        {"policy": "constant", "duration": "100ms", "maxRetries": 2}
    )
    resiliency_path.write_text(yaml.safe_dump_all([placement, *others]))
    return target


def set_pubsub_metadata(components: Path, values: dict[str, str]) -> Path:
    """Sets metadata items of the orders pub/sub component in a copy of components/ (for
    redeliverInterval, milliseconds: docs/runtime-defects.md, defect 6)."""
    pubsub_path = components / "common" / "pubsub.yaml"
    pubsub = yaml.safe_load(pubsub_path.read_text())
    for item in pubsub["spec"]["metadata"]:
        if item["name"] in values:
            item["value"] = values[item["name"]]
    pubsub_path.write_text(yaml.safe_dump(pubsub))
    return components


def local_stack_options(stores: Stores, components: Path, app_env: dict[str, str]) -> StackOptions:
    """Options of a test stack on `stores`, with fresh tokens between apps and sidecars."""
    placer_config = components / "config-placer.yaml"
    return StackOptions(
        stores=stores.endpoints(),
        resources=[components / "common", components / stores.kind.value],
        config=components / "config.yaml",
        placer_config=placer_config if placer_config.exists() else None,
        app_env=app_env,
        dapr_api_token=secrets.token_urlsafe(24),
        app_api_token=secrets.token_urlsafe(24),
    )


@dataclass
class RunningStack:
    stack: Stack
    stores: Stores
    ledger_path: Path
    options: StackOptions
    group: ProcessGroup
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.stack.api.url, timeout=30)


@contextmanager
def running_stack(
    tmp: Path,
    kind: StateStoreKind,
    *,
    stores: Stores | None = None,
    components: Path = COMPONENTS_DIR,
    app_env: dict[str, str] | None = None,
    app_ids: tuple[str, str] | None = None,
) -> Iterator[RunningStack]:
    """Starts (and at the end stops) a stack; with its own stores unless `stores` is given.
    `components` holds `config.yaml` (and `config-placer.yaml` when the placer's sidecar has its
    own), `common/` and one folder per state store kind."""
    tmp.mkdir(parents=True, exist_ok=True)
    ledger_path = tmp / "exchange-ledger.sqlite3"
    env = {
        "EXCHANGE_LEDGER_PATH": str(ledger_path),
        "ORDER_TIMEOUT_SECONDS": "2",
        "LOG_LEVEL": "INFO",
        **(app_env or {}),
    }
    with ProcessGroup(tmp) as group:
        own_stores = stores or start_stores(group, kind, tmp / "data")
        options = local_stack_options(own_stores, components, env)
        if app_ids:
            options.api_app_id, options.placer_app_id = app_ids
        stack = start_stack(group, options)
        running = RunningStack(stack, own_stores, ledger_path, options, group)
        try:
            yield running
        finally:
            running.client.close()
