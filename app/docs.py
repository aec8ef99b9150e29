"""The API's documentation pages, /docs (Swagger UI) and /redoc (ReDoc), with their scripts and
styles served by the app itself: FastAPI's own pages load them from a CDN, and stay blank
without internet (an air-gapped cluster, a laptop offline)."""

from fastapi import FastAPI, Request, Response
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

# The files of Swagger UI 5 and ReDoc 2 as the fastapi-offline package ships them (its FastAPI
# wrapper is not used): one widely used, maintained package for both viewers. Swagger UI 4 (the
# swagger-ui-bundle package) cannot render OpenAPI 3.1, which FastAPI writes.
ASSETS_PACKAGE = "fastapi_offline"
ASSETS_URL = "/docs/assets"


def install_docs(app: FastAPI) -> None:
    """Adds /docs, /redoc and their assets to an app made with `docs_url=None, redoc_url=None`."""
    openapi_url = app.openapi_url
    if openapi_url is None:
        return
    assets = StaticFiles(packages=[(ASSETS_PACKAGE, "static")])

    # A route rather than a mount: FastAPI names no route for a mount, so the request metrics
    # would count the assets with the unknown paths; this way they have a label of their own.
    @app.api_route(ASSETS_URL + "/{name}", methods=["GET", "HEAD"], include_in_schema=False)
    async def asset(name: str, request: Request) -> Response:
        return await assets.get_response(name, request.scope)  # 404 unless a file there

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        assets_url = _assets_url(request)
        return get_swagger_ui_html(
            openapi_url=_root_path(request) + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{assets_url}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets_url}/swagger-ui.css",
            swagger_favicon_url=f"{assets_url}/favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        assets_url = _assets_url(request)
        return get_redoc_html(
            openapi_url=_root_path(request) + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{assets_url}/redoc.standalone.js",
            redoc_favicon_url=f"{assets_url}/favicon.png",
            with_google_fonts=False,
        )


def _root_path(request: Request) -> str:
    """The prefix a proxy serves the app under, as FastAPI's own pages honour it."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _assets_url(request: Request) -> str:
    return _root_path(request) + ASSETS_URL
