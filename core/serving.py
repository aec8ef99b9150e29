"""Runs an app under uvicorn beside its metrics endpoint: `python -m app`, `python -m placer`."""

from dataclasses import dataclass, field
from pathlib import Path

import uvicorn

from core import metrics
from core.config import settings
from core.logs import configure_logging

# uvicorn's own idle timeout of keep-alive connections, for servers that set none.
UVICORN_KEEP_ALIVE_SECONDS = 5


@dataclass(frozen=True)
class Server:
    app: str  # "module:attribute"
    host: str
    port: int
    metrics_port: int
    workers: int = 1
    # Restart on changes under these directories (development); empty: no reloading.
    reload_dirs: list[Path] = field(default_factory=list)
    access_log: bool = False
    keep_alive_seconds: int = UVICORN_KEEP_ALIVE_SECONDS


def run(server: Server) -> None:
    configure_logging(settings.LOG_LEVEL, settings.LOG_FORMAT)
    multiprocess = server.workers > 1 or bool(server.reload_dirs)
    with metrics.serving(settings.METRICS_HOST, server.metrics_port, multiprocess=multiprocess):
        uvicorn.run(
            server.app,
            host=server.host,
            port=server.port,
            workers=server.workers,
            reload=bool(server.reload_dirs),
            reload_dirs=[str(path) for path in server.reload_dirs] or None,
            access_log=server.access_log,
            log_config=None,  # keep configure_logging's JSON lines
            proxy_headers=True,
            timeout_keep_alive=server.keep_alive_seconds,
        )
