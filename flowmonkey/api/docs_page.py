"""The API's interactive docs at ``/docs``, served with no outside host.

FastAPI's default ``/docs`` page loads Swagger UI from a CDN and its favicon from
FastAPI's site, so it is blank where deployments are offline; ReDoc likewise. Here the
page is FastAPI's own ``get_swagger_ui_html`` pointed at the copy of Swagger UI shipped
in ``flowmonkey/api/static/swagger`` (version and licence in its ``VENDORED.md``),
served at ``/docs/assets``; ReDoc is off (``create_app`` passes ``redoc_url=None``).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(__file__).resolve().parent / "static" / "swagger"
ASSETS_URL = "/docs/assets"


def install_docs(app: FastAPI, path: str = "/docs") -> None:
    """Serve Swagger UI at ``path`` (the app must be built with ``docs_url=None``)."""
    openapi_url = app.openapi_url or "/openapi.json"
    title = f"{app.title} API"

    # (mounted before the page's route would not matter: /docs and /docs/assets/...
    # do not overlap)
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")

    async def docs_page() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url, title=title,
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon-32x32.png",
            # Swagger UI would otherwise send the schema to an online validator
            swagger_ui_parameters={"validatorUrl": None},
        )

    app.add_api_route(path, docs_page, methods=["GET"], include_in_schema=False,
                      response_class=HTMLResponse)
