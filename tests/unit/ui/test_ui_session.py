"""The explorer's login, logout, session cookie and CSRF checks."""

from __future__ import annotations

from flowmonkey.api.auth import ApiAuth, ApiKey
from tests.unit.ui.ui_support import ADMIN, KEY_A, csrf_of, login, ui_client


async def test_a_page_without_a_session_sends_to_the_login_form() -> None:
    async with ui_client() as (client, _):
        response = await client.get("/ui/executions?status=failed")
        assert response.status_code == 303
        assert response.headers["location"] == \
            "/ui/login?next=%2Fui%2Fexecutions%3Fstatus%3Dfailed"
        form = await client.get("/ui/login")
        assert form.status_code == 200
        assert 'type="password" name="api_key"' in form.text


async def test_logging_in_sets_a_signed_httponly_strict_cookie_without_the_key() -> None:
    async with ui_client() as (client, _):
        response = await login(client, KEY_A)
        assert response.status_code == 303
        assert response.headers["location"] == "/ui/executions"
        cookie = next(c for c in response.headers.get_list("set-cookie")
                      if c.startswith("fm_ui="))
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie or "samesite=strict" in cookie.lower()
        assert "Path=/ui" in cookie
        assert KEY_A not in cookie
        page = await client.get("/ui/executions")
        assert page.status_code == 200
        assert "tenant tenant-a" in page.text
        assert KEY_A not in page.text


async def test_a_wrong_key_is_refused_and_not_echoed() -> None:
    async with ui_client() as (client, _):
        response = await login(client, "not-a-key-0123456789-zzz")
        assert response.status_code == 401
        assert "not valid" in response.text
        assert "not-a-key-0123456789-zzz" not in response.text
        assert (await client.get("/ui/executions")).status_code == 303


async def test_a_login_without_its_form_token_is_refused() -> None:
    async with ui_client() as (client, _):
        response = await client.post("/ui/login", data={"api_key": ADMIN,
                                                        "csrf_token": "forged"})
        assert response.status_code == 403
        assert "fm_ui=" not in response.headers.get("set-cookie", "")


async def test_login_goes_back_to_the_page_asked_for_but_never_off_site() -> None:
    async with ui_client() as (client, _):
        form = await client.get("/ui/login?next=/ui/executions%3Fstatus%3Dwaiting")
        token = csrf_of(form.text)
        response = await client.post("/ui/login", data={
            "api_key": ADMIN, "csrf_token": token, "next": "/ui/executions?status=waiting"})
        assert response.headers["location"] == "/ui/executions?status=waiting"
    async with ui_client() as (client, _):
        form = await client.get("/ui/login")
        response = await client.post("/ui/login", data={
            "api_key": ADMIN, "csrf_token": csrf_of(form.text), "next": "//evil.example/"})
        assert response.headers["location"] == "/ui/executions"


async def test_logout_needs_the_csrf_token_and_ends_the_session() -> None:
    async with ui_client() as (client, _):
        await login(client, ADMIN)
        page = await client.get("/ui/executions")
        refused = await client.post("/ui/logout", data={"csrf_token": "wrong"})
        assert refused.status_code == 403
        assert "CSRF_FAILED" in refused.text
        done = await client.post("/ui/logout", data={"csrf_token": csrf_of(page.text)})
        assert done.status_code == 303
        client.cookies.delete("fm_ui", path="/ui")
        assert (await client.get("/ui/executions")).status_code == 303


async def test_a_session_ends_when_its_key_is_no_longer_configured() -> None:
    async with ui_client() as (client, _):
        await login(client, KEY_A)
        cookie = client.cookies.get("fm_ui")
        assert cookie
    fewer = ApiAuth([ApiKey(ADMIN, None)])
    async with ui_client(fewer) as (client, _):
        client.cookies.set("fm_ui", cookie, path="/ui")
        assert (await client.get("/ui/executions")).status_code == 303


async def test_a_session_signed_by_another_secret_is_not_taken() -> None:
    async with ui_client(secret="the-first-secret-0123") as (client, _):
        await login(client, ADMIN)
        cookie = client.cookies.get("fm_ui")
    async with ui_client(secret="the-other-secret-0123") as (client, _):
        client.cookies.set("fm_ui", cookie or "", path="/ui")
        assert (await client.get("/ui/executions")).status_code == 303


async def test_without_auth_every_visitor_is_an_admin_with_a_csrf_token() -> None:
    async with ui_client(None) as (client, _):
        assert (await client.get("/ui/login")).status_code == 303
        page = await client.get("/ui/executions")
        assert page.status_code == 200
        assert "admin" in page.text
        assert "fm_ui=" in page.headers.get("set-cookie", "")
        token = csrf_of(page.text) if 'name="csrf_token"' in page.text else None
        assert token is None  # no logout form without auth
        assert "X-CSRF-Token" in page.text


async def test_pages_send_security_headers_and_static_files_are_served() -> None:
    async with ui_client() as (client, _):
        await login(client, ADMIN)
        page = await client.get("/ui/executions")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"
        htmx = await client.get("/ui/static/htmx.min.js")
        assert htmx.status_code == 200
        assert b"htmx" in htmx.content
        css = await client.get("/ui/static/ui.css")
        assert css.status_code == 200
        assert "//" not in page.text.split("<body")[0].replace("http-equiv", "")
        assert "https://" not in page.text
        assert "http://" not in page.text


async def test_an_unknown_ui_path_is_an_html_404_and_the_api_stays_json() -> None:
    async with ui_client() as (client, _):
        await login(client, ADMIN)
        page = await client.get("/ui/no-such-page")
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")
        api = await client.get("/v1/no-such-route")
        assert api.status_code == 404
        assert api.json()["error"]["code"] == "NOT_FOUND"
