"""The benchmark's load generator (wrk with bench/order.lua) spreads one run's connections
over several API replicas."""

import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench import load

received: Counter[int] = Counter()


class Created(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        received[self.server.server_port] += 1  # type: ignore[attr-defined]
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def replicas() -> Iterator[list[str]]:
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), Created) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield [f"http://127.0.0.1:{server.server_address[1]}" for server in servers]
    for server in servers:
        server.shutdown()
        server.server_close()


def test_connections_are_spread_over_every_replica(replicas: list[str]) -> None:
    received.clear()
    result = load.wrk(replicas, 4, 1)
    ports = [int(url.rsplit(":", 1)[1]) for url in replicas]
    assert all(received[port] > 0 for port in ports), received
    assert result.non_2xx == 0
    assert sum(received.values()) >= result.rps  # one second of load: rps ≈ requests
