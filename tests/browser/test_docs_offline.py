"""``/docs`` in a real browser: Swagger UI renders the API from the server's own
assets, and the page asks no other host for anything."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.sync_api import Page, Request, expect

from tests.browser.browser_support import Server, shoot


def test_docs_render_with_no_request_to_another_host(page: Page, server: Server) -> None:
    requested: list[str] = []

    def note(request: Request) -> None:
        requested.append(request.url)

    page.on("request", note)
    page.goto("/docs")
    # Swagger UI built the page from /openapi.json: an operation of the API is listed
    expect(page.locator(".opblock-summary-path", has_text="/v1/executions").first) \
        .to_be_visible()
    shoot(page, "docs", full_page=False)
    ours = urlsplit(server.base_url).netloc
    hosts = {urlsplit(url).netloc for url in requested if urlsplit(url).scheme != "data"}
    assert hosts == {ours}, requested
    assert any(url.endswith("/docs/assets/swagger-ui-bundle.js") for url in requested)
