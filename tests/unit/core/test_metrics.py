"""The metrics endpoint: the process's own registry, or the files of several processes."""

import multiprocessing
import os
from pathlib import Path

import httpx

from core import metrics
from devstack.processes import free_port


def count_in_child(directory: str) -> None:
    """What a uvicorn worker does: records into the shared directory."""
    os.environ[metrics.MULTIPROCESS_DIR_VARIABLE] = directory
    from prometheus_client import Counter  # noqa: PLC0415 - after the directory is set

    Counter("unit_test_orders", "counted by a worker").inc(3)


def test_several_processes_are_added_up_and_their_files_removed() -> None:
    port = free_port()
    with metrics.serving("127.0.0.1", port, multiprocess=True):
        directory = os.environ[metrics.MULTIPROCESS_DIR_VARIABLE]
        spawn = multiprocessing.get_context("spawn")
        for _ in range(2):
            worker = spawn.Process(target=count_in_child, args=(directory,))
            worker.start()
            worker.join(timeout=30)
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert "unit_test_orders_total 6.0" in text
    assert not Path(directory).exists()
    del os.environ[metrics.MULTIPROCESS_DIR_VARIABLE]


def test_a_single_process_serves_its_registry_and_stops() -> None:
    port = free_port()
    with metrics.serving("127.0.0.1", port, multiprocess=False):
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert "process_cpu_seconds_total" in text or "python_info" in text
    try:
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1)
        stopped = False
    except httpx.ConnectError:
        stopped = True
    assert stopped
