"""The Prometheus endpoint of an app, on a port of its own (not the API's public one).

An app run in several processes (uvicorn's workers, or its reloader's child) records its metrics
in files under PROMETHEUS_MULTIPROC_DIR, and the endpoint, served by the parent process, adds
them up; a single process serves its own registry."""

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def serving(host: str, port: int, *, multiprocess: bool) -> Iterator[None]:
    """Serves /metrics on host:port while the block runs. With `multiprocess`, the block must
    start the processes that record the metrics (they read the directory from the environment
    when they import prometheus_client)."""
    directory = tempfile.mkdtemp(prefix="order-service-metrics-") if multiprocess else None
    if directory:
        os.environ[MULTIPROCESS_DIR_VARIABLE] = directory
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)
    else:
        registry = REGISTRY
    server, thread = start_http_server(port, addr=host, registry=registry)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        if directory:
            shutil.rmtree(directory, ignore_errors=True)
