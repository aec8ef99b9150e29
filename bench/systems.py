"""Each benchmarked system started on loopback, as a context manager that yields its URL."""

import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from core.config import PROJECT_ROOT, Environment, settings
from devstack.config import StateStoreKind
from devstack.processes import STOP_GRACE_SECONDS, ProcessGroup, free_port, wait_until
from devstack.stack import (
    StackOptions,
    StoreEndpoints,
    resources_dirs,
    start_replicas,
)
from devstack.stores import start_redis

STARTUP_TIMEOUT_SECONDS = 180
# The stores, two sidecars and two apps of ./run.
RUN_STOP_GRACE_SECONDS = 6 * STOP_GRACE_SECONDS
PEERS = {"floor": "bench.peers:floor", "naive": "bench.peers:naive"}


@dataclass(frozen=True)
class Service:
    url: str  # the API's
    placer_metrics_url: str  # the placer's Prometheus endpoint


@contextmanager
def service(
    tmp: Path, kind: StateStoreKind, ledger: Path, exchange: dict[str, str]
) -> Iterator[str]:
    """This service as `./run` starts it in production mode, on free ports, data under tmp."""
    with service_endpoints(tmp, kind, ledger, exchange) as started:
        yield started.url


@contextmanager
def service_endpoints(
    tmp: Path, kind: StateStoreKind, ledger: Path, exchange: dict[str, str]
) -> Iterator[Service]:
    """`service`, with the placer's metrics endpoint beside the API's URL."""
    port, placer_metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "ENVIRONMENT": "production",
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
        "API_DAPR_HTTP_PORT": str(free_port()),
        "PLACER_PORT": str(free_port()),
        "PLACER_GRPC_PORT": str(free_port()),
        "PLACER_DAPR_HTTP_PORT": str(free_port()),
        "API_METRICS_PORT": str(free_port()),
        "PLACER_METRICS_PORT": str(placer_metrics_port),
        "STATE_STORE_KIND": kind.value,
        # Fresh stores each time: no backlog left by an earlier start.
        "DATA_DIR": tempfile.mkdtemp(prefix=f"service-{kind.value}-", dir=tmp),
        "EXCHANGE_LEDGER_PATH": str(ledger),
        "LOG_LEVEL": "WARNING",
        **exchange,
    }
    # ./run starts private stores unless told of others (.env, as .env.example has it, does not).
    for name in ("REDIS_HOST", "REDIS_PASSWORD", "POSTGRES_CONNECTION_STRING"):
        env.pop(name, None)
    with ProcessGroup(tmp) as group:
        run = group.start(f"service-{kind.value}", [str(PROJECT_ROOT / "run")], env=env)
        url = f"http://127.0.0.1:{port}"
        wait_until(
            run,
            _ready(f"{url}/health/ready"),
            what="starting",
            timeout_seconds=STARTUP_TIMEOUT_SECONDS,
        )
        try:
            yield Service(url, f"http://127.0.0.1:{placer_metrics_port}/metrics")
        finally:
            # ./run stops its processes one after another, each with its own grace (a placer
            # with deliveries in flight takes a while): give it the time for all of them, or
            # what it has not stopped yet outlives it.
            run.stop(grace_seconds=RUN_STOP_GRACE_SECONDS)


@contextmanager
def replicas(
    tmp: Path, apis: int, placers: int, ledger: Path, exchange: dict[str, str]
) -> Iterator[list[str]]:
    """`apis` API replicas and `placers` placers, each beside its own daprd, on one Redis, as
    Kubernetes runs them (one uvicorn worker per API pod); yields the APIs' URLs."""
    with ProcessGroup(tmp) as group:
        redis = start_redis(group, Path(tempfile.mkdtemp(prefix="redis-", dir=tmp)), free_port())
        options = StackOptions(
            stores=StoreEndpoints(redis.address),
            resources=resources_dirs(StateStoreKind.REDIS),
            environment=Environment.PRODUCTION,
            app_env={"EXCHANGE_LEDGER_PATH": str(ledger), "LOG_LEVEL": "WARNING", **exchange},
        )
        started, _ = start_replicas(group, options, apis=apis, placers=placers)
        urls = [app.url for app in started]
        yield urls


@contextmanager
def peer(tmp: Path, name: str) -> Iterator[str]:
    """The floor or the naive peer, with as many uvicorn workers as the service's API."""
    port = free_port()
    with ProcessGroup(tmp) as group:
        redis = start_redis(group, tmp / f"redis-{name}", free_port())
        env = {**os.environ, "BENCH_REDIS_URL": f"redis://{redis.address}/0"}
        argv = [
            sys.executable, "-m", "uvicorn", PEERS[name], "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(settings.API_WORKERS),
            "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        app = group.start(name, argv, env=env, cwd=PROJECT_ROOT)
        url = f"http://127.0.0.1:{port}"
        wait_until(
            app, _ready(f"{url}/docs"), what="starting", timeout_seconds=STARTUP_TIMEOUT_SECONDS
        )
        yield url


def _ready(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=1).status_code == httpx.codes.OK
        except httpx.HTTPError:
            return False

    return check
