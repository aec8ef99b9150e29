"""The API's /docs and /redoc, loaded by a real browser (headless Chromium) from a real API
process with no network beyond loopback: every operation is rendered, so nothing the pages
need comes from the internet.

`./run_tests.sh tests/e2e/test_docs_browser.py --refresh-docs-screenshot` also writes the
README's picture of /docs, docs/images/api-docs.png."""

import os
import struct
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.config import PROJECT_ROOT
from devstack import binaries
from devstack.processes import ProcessGroup, free_port, http_ok, wait_until
from tests.e2e.browser import WINDOW, Chromium
from tests.telemetry import scrape, value

pytestmark = pytest.mark.browser

README_SCREENSHOT = PROJECT_ROOT / "docs" / "images" / "api-docs.png"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Api:
    url: str
    metrics_url: str

    def operations(self) -> list[tuple[str, str]]:
        """(tag, operationId) of every operation the OpenAPI document lists."""
        spec: dict[str, Any] = httpx.get(f"{self.url}/openapi.json", timeout=5).json()
        return [
            (operation["tags"][0], operation["operationId"])
            for path in spec["paths"].values()
            for operation in path.values()
        ]


@pytest.fixture(scope="module")
def chromium() -> Chromium:
    """Debian's chromium, installed when missing (as the stack's Redis is)."""
    return Chromium(binaries.chromium())


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """`python -m app` as the images run it; the pages need no sidecar."""
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "ENVIRONMENT": "production",
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
        "API_WORKERS": "1",
        "API_METRICS_PORT": str(metrics_port),
    }
    with ProcessGroup(tmp_path_factory.mktemp("api")) as group:
        process = group.start("order-api", [sys.executable, "-m", "app"], env=env, cwd=PROJECT_ROOT)
        url = f"http://127.0.0.1:{port}"
        wait_until(process, http_ok(f"{url}/health/live"), what="starting", timeout_seconds=60)
        yield Api(url, f"http://127.0.0.1:{metrics_port}/metrics")


def test_swagger_ui_renders_every_operation(chromium: Chromium, api: Api) -> None:
    dom = chromium.dom(f"{api.url}/docs")
    assert 'id="operations-orders-create_order_orders_post"' in dom  # POST /orders
    for tag, operation_id in api.operations():
        assert f'id="operations-{tag}-{operation_id}"' in dom
    # The scripts and styles came from the API itself.
    samples = scrape(api.metrics_url)
    served = {"method": "GET", "route": "/docs/assets/{name}"}
    assert value(samples, "orders_api_requests_total", **served, status="200") >= 2


def test_redoc_renders_every_operation(chromium: Chromium, api: Api) -> None:
    dom = chromium.dom(f"{api.url}/redoc")
    assert 'id="tag/orders/operation/create_order_orders_post"' in dom
    for tag, operation_id in api.operations():
        assert f'id="tag/{tag}/operation/{operation_id}"' in dom


def test_screenshot_of_the_docs(
    chromium: Chromium, api: Api, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    target = tmp_path / "api-docs.png"
    if request.config.getoption("--refresh-docs-screenshot"):
        target = README_SCREENSHOT
        target.parent.mkdir(parents=True, exist_ok=True)
    chromium.screenshot(f"{api.url}/docs", target)
    width, height, pixels = read_png(target.read_bytes())
    assert (width, height) == WINDOW
    assert len(set(pixels)) > 16, "the screenshot is blank"


def read_png(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and the (filtered) pixel bytes of a PNG."""
    assert data.startswith(PNG_SIGNATURE), "not a PNG"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk comes first
    image_data, offset = b"", len(PNG_SIGNATURE)
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        if kind == b"IDAT":
            image_data += data[offset + 8 : offset + 8 + length]
        offset += 12 + length  # length, type, data, CRC
    return width, height, zlib.decompress(image_data)
