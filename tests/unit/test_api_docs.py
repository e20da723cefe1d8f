"""``/docs`` works offline: the page and its assets come from the app itself."""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path
from urllib.parse import urlsplit

from flowmonkey.api.docs_page import ASSETS
from tests.unit.api_support import api_client

# every URL the page loads: src/href attributes and the strings its script hands
# Swagger UI (the schema's URL)
_URLS = re.compile(r"""(?:src|href)=["']([^"']+)["']|url:\s*'([^']+)'""")


async def test_docs_page_loads_nothing_from_another_host() -> None:
    async with api_client() as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
        urls = [a or b for a, b in _URLS.findall(page.text)]
        assert "/docs/assets/swagger-ui-bundle.js" in urls
        assert "/docs/assets/swagger-ui.css" in urls
        assert "/openapi.json" in urls
        for url in urls:
            parts = urlsplit(url)
            assert not parts.scheme, url
            assert not parts.netloc, url
            assert url.startswith("/"), url
        # nothing in the page names a host at all (no CDN, no online validator)
        assert "https://" not in page.text
        assert "http://" not in page.text
        # the schema validator is off: Swagger UI would send the schema out
        assert '"validatorUrl": null' in page.text

        for url in urls:
            if url.startswith("/docs/assets/"):
                asset = await client.get(url)
                assert asset.status_code == 200, url
                assert len(asset.content) > 0


async def test_assets_are_served_with_their_types_and_redoc_is_off() -> None:
    async with api_client() as client:
        js = await client.get("/docs/assets/swagger-ui-bundle.js")
        css = await client.get("/docs/assets/swagger-ui.css")
        assert "javascript" in js.headers["content-type"]
        assert css.headers["content-type"].startswith("text/css")
        assert b"SwaggerUIBundle" in js.content
        assert (await client.get("/redoc")).status_code == 404


def test_the_assets_ship_in_the_package() -> None:
    config = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml")
                           .read_text())
    globs = config["tool"]["setuptools"]["package-data"]["flowmonkey.api"]
    api = ASSETS.parents[1]
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "LICENSE"):
        relative = (ASSETS / asset).relative_to(api).as_posix()
        assert any(fnmatch(relative, glob) for glob in globs), relative
        assert (ASSETS / asset).is_file()
