"""`./run` starts the local stack; `./run redrive` re-drives dead-lettered orders;
`./run prepare` only installs or builds what the stack needs."""

import asyncio
import signal
import sys
import time
from types import FrameType

from core.config import settings
from devstack import binaries
from devstack.config import StateStoreKind, devstack_settings
from devstack.processes import ProcessGroup, StartupError, free_port, say
from devstack.stack import (
    AppPorts,
    StackOptions,
    StoreEndpoints,
    apps_log_format,
    new_signing_key,
    resources_dirs,
    start_stack,
)
from devstack.stores import start_postgres, start_redis
from placer.redrive import main as redrive_orders


def _stop_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def start_stores(group: ProcessGroup) -> StoreEndpoints:
    redis_host = devstack_settings.REDIS_HOST
    if redis_host is None:
        say("Starting a private Redis (data in DATA_DIR/redis)")
        redis_host = start_redis(group, devstack_settings.DATA_DIR / "redis", free_port()).address
    postgres = devstack_settings.POSTGRES_CONNECTION_STRING or ""
    if devstack_settings.STATE_STORE_KIND is StateStoreKind.POSTGRES and not postgres:
        say("Starting a private PostgreSQL (data in DATA_DIR/postgres)")
        server = start_postgres(group, devstack_settings.DATA_DIR / "postgres", free_port())
        postgres = server.connection_string
    return StoreEndpoints(redis_host, devstack_settings.REDIS_PASSWORD, postgres)


def up() -> int:
    log_dir = devstack_settings.DATA_DIR / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _stop_on_signal)
    # Ctrl-C stops everything even when SIGINT came ignored (a shell without job control
    # starts background commands so, and Python then leaves it ignored).
    signal.signal(signal.SIGINT, _stop_on_signal)
    log_format = apps_log_format(
        settings.LOG_FORMAT if "LOG_FORMAT" in settings.model_fields_set else None,
        settings.ENVIRONMENT,
        terminal=sys.stderr.isatty(),  # where we echo the apps' lines
    )
    with ProcessGroup(log_dir) as group:
        try:
            options = StackOptions(
                stores=start_stores(group),
                resources=resources_dirs(devstack_settings.STATE_STORE_KIND),
                api=AppPorts(
                    app=settings.API_PORT,
                    dapr_http=devstack_settings.API_DAPR_HTTP_PORT,
                    metrics=settings.API_METRICS_PORT,
                ),
                placer=AppPorts(
                    app=settings.PLACER_PORT,
                    dapr_http=devstack_settings.PLACER_DAPR_HTTP_PORT,
                    metrics=settings.PLACER_METRICS_PORT,
                    callback=settings.PLACER_GRPC_PORT,
                ),
                environment=settings.ENVIRONMENT,
                api_host=settings.API_HOST,
                api_workers=settings.API_WORKERS,
                dapr_api_token=settings.DAPR_API_TOKEN,
                app_api_token=settings.APP_API_TOKEN,
                order_signing_key=settings.ORDER_SIGNING_KEY.get_secret_value()
                or new_signing_key(),
                app_env={"LOG_FORMAT": log_format.value},
                echo=True,
            )
            say(f"Starting the placer and the API ({settings.ENVIRONMENT.value}, "
                f"{devstack_settings.STATE_STORE_KIND.value} state store)")  # fmt: skip
            start_stack(group, options)
            say(f"Order service ready: http://{settings.API_HOST}:{settings.API_PORT}/docs "
                f"(logs in {log_dir}; Ctrl-C stops everything)")  # fmt: skip
            say(f"Metrics: http://{settings.METRICS_HOST}:{settings.API_METRICS_PORT}/metrics "
                f"(API), http://{settings.METRICS_HOST}:{settings.PLACER_METRICS_PORT}/metrics "
                "(placer)")  # fmt: skip
            return _watch(group)
        except StartupError as error:
            say(f"Start-up failed: {error}")
            return 1
        except KeyboardInterrupt:
            say("Stopping")
            return 0


def _watch(group: ProcessGroup) -> int:
    while True:
        for process in group.processes:
            if not process.running():
                say(f"{process.name} exited ({process.popen.returncode}); stopping the rest")
                return 1
        time.sleep(0.5)


def prepare() -> int:
    """Finds, installs or builds everything the stack runs, so tests start at once."""
    say(f"daprd: {binaries.daprd()}")
    say(f"redis-server: {binaries.redis_server()}")
    say(f"PostgreSQL: {binaries.postgres_bin_dir()}")
    say(f"helm: {binaries.helm()}")
    say(f"chromium: {binaries.chromium()}")
    return 0


def redrive() -> int:
    """Re-drives through the placer's sidecar of a running `./run`."""
    asyncio.run(
        redrive_orders(f"http://{settings.DAPR_HOST}:{devstack_settings.PLACER_DAPR_HTTP_PORT}")
    )
    return 0


if __name__ == "__main__":
    commands = {"up": up, "redrive": redrive, "prepare": prepare}
    command = sys.argv[1] if len(sys.argv) > 1 else "up"
    if command not in commands:
        sys.exit(f"usage: ./run [{'|'.join(commands)}], not {command!r}")
    sys.exit(commands[command]())
