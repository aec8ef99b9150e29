"""/docs and /redoc take everything they load from the app itself (tests/e2e/test_docs_browser.py
renders them in a browser)."""

import re

import pytest
from fastapi.testclient import TestClient

from app.docs import ASSETS_URL
from app.main import app

REFERENCE = re.compile(r"""(?:src|href)="([^"]+)"|url: '([^']+)'""")
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


def references(html: str) -> list[str]:
    return [src or url for src, url in REFERENCE.findall(html)]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_from_the_app(client: TestClient, page: str) -> None:
    html = client.get(page).raise_for_status().text
    loaded = references(html)
    assert any(url.endswith(".js") for url in loaded)
    for url in loaded:
        assert url.startswith("/"), f"{page} loads {url} from elsewhere"
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.content, url
        suffix = url[url.rfind(".") :]
        if suffix in CONTENT_TYPES:
            assert response.headers["content-type"].startswith(CONTENT_TYPES[suffix]), url


def test_redoc_points_at_the_openapi_document(client: TestClient) -> None:
    html = client.get("/redoc").text
    assert 'spec-url="/openapi.json"' in html
    assert "fonts.googleapis.com" not in html


def test_the_pages_follow_the_prefix_a_proxy_serves_them_under(client: TestClient) -> None:
    assert f'src="{ASSETS_URL}/swagger-ui-bundle.js"' in client.get("/docs").text
    prefixed = TestClient(app, root_path="/api").get("/docs").text
    assert f'src="/api{ASSETS_URL}/swagger-ui-bundle.js"' in prefixed
    assert "url: '/api/openapi.json'" in prefixed


def test_swagger_ui_reads_openapi_3_1(client: TestClient) -> None:
    """FastAPI writes OpenAPI 3.1, which Swagger UI renders from version 5 on."""
    assert client.get("/openapi.json").json()["openapi"].startswith("3.1")
    bundle = client.get(f"{ASSETS_URL}/swagger-ui-bundle.js").text
    version = re.search(r'PACKAGE_VERSION:"(\d+)\.', bundle)
    assert version is not None
    assert int(version.group(1)) >= 5


def test_only_the_packaged_assets_are_served(client: TestClient) -> None:
    assert client.get(f"{ASSETS_URL}/..%2Fcore.py").status_code == 404
    assert client.get(f"{ASSETS_URL}/missing.js").status_code == 404
    assert client.head(f"{ASSETS_URL}/swagger-ui.css").status_code == 200


def test_docs_stay_out_of_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith(("/docs", "/redoc"))]
