"""The whole service on one machine: both apps, each with its Dapr sidecar, on given stores."""

import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

from core.config import PROJECT_ROOT, Environment, LogFormat
from devstack import binaries
from devstack.config import StateStoreKind
from devstack.processes import (
    ManagedProcess,
    ProcessGroup,
    free_port,
    http_ok,
    port_open,
    wait_until,
)

COMPONENTS_DIR = PROJECT_ROOT / "components"
API_APP_ID = "order-api"
PLACER_APP_ID = "order-placer"
STARTUP_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class StoreEndpoints:
    """Where daprd finds the stores; handed to it as the secrets the components read."""

    redis_host: str
    redis_password: str = ""
    postgres_connection_string: str = ""

    def as_env(self) -> dict[str, str]:
        return {
            "REDIS_HOST": self.redis_host,
            "REDIS_PASSWORD": self.redis_password,
            "POSTGRES_CONNECTION_STRING": self.postgres_connection_string,
        }

    def streams_env(self) -> dict[str, str]:
        """Where the placer finds the Redis streams it trims (placer/stream_trim.py)."""
        return {
            "STREAMS_REDIS_HOST": self.redis_host,
            "STREAMS_REDIS_PASSWORD": self.redis_password,
        }


def resources_dirs(kind: StateStoreKind, root: Path = COMPONENTS_DIR) -> list[Path]:
    return [root / "common", root / kind.value]


@dataclass
class AppPorts:
    app: int  # the app's HTTP port
    dapr_http: int
    dapr_grpc: int = field(default_factory=free_port)
    dapr_metrics: int = field(default_factory=free_port)
    metrics: int = field(default_factory=free_port)  # the app's own Prometheus endpoint
    # Where the sidecar calls the app over gRPC (the placer's deliveries); None: it does not.
    callback: int | None = None

    @classmethod
    def free(cls, *, callback: bool = False) -> "AppPorts":
        return cls(
            app=free_port(), dapr_http=free_port(), callback=free_port() if callback else None
        )


def new_signing_key() -> str:
    """A key for the orders' signatures, for one run of a stack (both apps get it)."""
    return secrets.token_hex(32)


@dataclass
class StackOptions:
    stores: StoreEndpoints
    resources: list[Path]
    api: AppPorts = field(default_factory=AppPorts.free)
    placer: AppPorts = field(default_factory=lambda: AppPorts.free(callback=True))
    config: Path = COMPONENTS_DIR / "config.yaml"
    # The placer's sidecar's configuration when it has one of its own (the chart's do).
    placer_config: Path | None = None
    api_app_id: str = API_APP_ID  # the components' scopes name these
    placer_app_id: str = PLACER_APP_ID
    environment: Environment = Environment.DEVELOPMENT
    api_host: str = "127.0.0.1"
    api_workers: int = 1
    app_env: dict[str, str] = field(default_factory=dict)  # settings for both apps
    # Apps and sidecars authenticate each other with these when set.
    dapr_api_token: str | None = None
    app_api_token: str | None = None
    # The API signs the orders it publishes with it, the placer checks (core/signing.py).
    order_signing_key: str = field(default_factory=new_signing_key)

    def config_of(self, app_id: str) -> Path:
        if app_id == self.placer_app_id and self.placer_config is not None:
            return self.placer_config
        return self.config

    def token_env(self) -> dict[str, str]:
        tokens = {"DAPR_API_TOKEN": self.dapr_api_token, "APP_API_TOKEN": self.app_api_token}
        return {name: token for name, token in tokens.items() if token}

    echo: bool = False


def apps_log_format(
    configured: LogFormat | None, environment: Environment, *, terminal: bool
) -> LogFormat:
    """How the apps log: as LOG_FORMAT says when it is set; otherwise plain text for a developer
    watching a terminal, JSON (the apps' own default, as in production) for anyone else. The
    apps cannot tell for themselves: their output comes through a pipe to us."""
    if configured is not None:
        return configured
    if environment is Environment.DEVELOPMENT and terminal:
        return LogFormat.TEXT
    return LogFormat.JSON


@dataclass(frozen=True)
class AppCommand:
    argv: list[str]
    env: dict[str, str]  # the app's own settings: where it listens, in which mode


@dataclass
class RunningApp:
    app_id: str
    command: AppCommand
    app: ManagedProcess
    sidecar: ManagedProcess
    ports: AppPorts

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports.app}"

    @property
    def dapr_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.dapr_http}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.metrics}/metrics"


@dataclass
class Stack:
    api: RunningApp
    placer: RunningApp


def start_stack(group: ProcessGroup, options: StackOptions) -> Stack:
    """Starts the placer and the API, each beside its own daprd, and waits until all are ready."""
    placer = start_app(
        group,
        options,
        options.placer_app_id,
        options.placer,
        placer_command(options.placer, options.stores),
    )
    api = start_app(group, options, options.api_app_id, options.api, api_command(options))
    return Stack(api=api, placer=placer)


def start_replicas(
    group: ProcessGroup, options: StackOptions, *, apis: int, placers: int
) -> tuple[list[RunningApp], list[RunningApp]]:
    """Several APIs and placers, each beside its own daprd on free ports, with the app ids of
    `options` (as Kubernetes runs replicas): the placers first, then the APIs."""
    started_placers = []
    for _ in range(placers):
        ports = AppPorts.free(callback=True)
        command = placer_command(ports, options.stores)
        started_placers.append(start_app(group, options, options.placer_app_id, ports, command))
    started_apis = []
    for _ in range(apis):
        ports = AppPorts.free()
        command = api_command(options, ports)
        started_apis.append(start_app(group, options, options.api_app_id, ports, command))
    return started_apis, started_placers


def start_app(
    group: ProcessGroup, options: StackOptions, app_id: str, ports: AppPorts, command: AppCommand
) -> RunningApp:
    app = start_app_process(group, options, app_id, ports, command)
    sidecar = start_sidecar(group, options, app_id, ports)
    return RunningApp(app_id=app_id, command=command, app=app, sidecar=sidecar, ports=ports)


def start_app_process(
    group: ProcessGroup, options: StackOptions, app_id: str, ports: AppPorts, command: AppCommand
) -> ManagedProcess:
    """The app alone (its sidecar comes next, or is still running)."""
    app_env = {
        **os.environ,
        "ORDER_SIGNING_KEY": options.order_signing_key,
        **options.app_env,
        **options.token_env(),
        "DAPR_HTTP_PORT": str(ports.dapr_http),
        "DAPR_GRPC_PORT": str(ports.dapr_grpc),
        **command.env,
    }
    app = group.start(app_id, command.argv, env=app_env, cwd=PROJECT_ROOT, echo=options.echo)
    wait_until(app, port_open(ports.app), what="starting", timeout_seconds=STARTUP_TIMEOUT_SECONDS)
    return app


def start_sidecar(
    group: ProcessGroup, options: StackOptions, app_id: str, ports: AppPorts
) -> ManagedProcess:
    argv = [
        str(binaries.daprd()),
        "--app-id", app_id,
        # The placer takes its deliveries over gRPC (see placer/callbacks.py); the API
        # takes no calls from its sidecar.
        "--app-port", str(ports.app if ports.callback is None else ports.callback),
        "--app-protocol", "http" if ports.callback is None else "grpc",
        "--dapr-listen-addresses", "127.0.0.1",
        "--dapr-http-port", str(ports.dapr_http),
        "--dapr-grpc-port", str(ports.dapr_grpc),
        "--metrics-port", str(ports.dapr_metrics),
        "--config", str(options.config_of(app_id)),
        "--log-level", "warn",
        # No app health check (docs/decisions/0007-no-app-health-check.md): when the app turns
        # unhealthy the runtime cancels the deliveries it is retrying, and Redis Streams
        # acknowledges them.
    ]  # fmt: skip
    for resources in options.resources:
        argv += ["--resources-path", str(resources)]
    env = {**os.environ, **options.stores.as_env(), **options.token_env()}
    sidecar = group.start(f"{app_id}-daprd", argv, env=env, echo=options.echo)
    wait_until(
        sidecar,
        # The health endpoint needs no token.
        http_ok(f"http://127.0.0.1:{ports.dapr_http}/v1.0/healthz"),
        what="loading its components",
        timeout_seconds=STARTUP_TIMEOUT_SECONDS,
    )
    return sidecar


def api_command(options: StackOptions, ports: AppPorts | None = None) -> AppCommand:
    ports = ports or options.api
    settings = {
        "ENVIRONMENT": options.environment.value,  # development: one process that reloads
        "API_HOST": options.api_host,
        "API_PORT": str(ports.app),
        "API_WORKERS": str(options.api_workers),
        "API_METRICS_PORT": str(ports.metrics),
    }
    return AppCommand([sys.executable, "-m", "app"], settings)


def placer_command(ports: AppPorts, stores: StoreEndpoints) -> AppCommand:
    # The placer is only reached by its sidecar, so it listens on loopback in every mode.
    settings = {
        "PLACER_HOST": "127.0.0.1",
        "PLACER_PORT": str(ports.app),
        "PLACER_GRPC_PORT": str(ports.callback),
        "PLACER_METRICS_PORT": str(ports.metrics),
        **stores.streams_env(),
    }
    return AppCommand([sys.executable, "-m", "placer"], settings)
