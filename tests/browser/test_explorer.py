"""The explorer in headless Chromium, against a real ``flowmonkey api`` process."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.browser_support import TENANT_KEY, Server, log_in, shoot

ORDER = {"order": {"id": "A-1", "shipping": "express",
                   "items": [{"sku": "banana", "qty": 3, "price": 1.5}]}}


def test_login_is_required_and_a_bad_key_is_refused(page: Page) -> None:
    page.goto("/ui/executions")
    expect(page).to_have_url(re.compile(r"/ui/login"))
    page.get_by_label("API key").fill("not-a-configured-key-at-all")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("body")).to_contain_text("Log in")
    expect(page).to_have_url(re.compile(r"/ui/login"))
    shoot(page, "login")


def test_log_in_and_see_an_execution_in_the_list(page: Page, server: Server) -> None:
    execution_id = server.start("order-processing", ORDER)
    server.wait_status(execution_id, "completed")
    log_in(page)
    page.goto("/ui/executions")
    link = page.get_by_role("link", name=execution_id)
    expect(link).to_be_visible()
    shoot(page, "executions")
    link.click()
    expect(page).to_have_url(re.compile(f"/ui/executions/{execution_id}$"))


def test_a_tenant_key_sees_only_its_tenant(page: Page, server: Server) -> None:
    other = server.start("order-processing", ORDER)  # the admin's: no tenant
    mine = server.start("order-processing", ORDER, key=TENANT_KEY)
    server.wait_status(mine, "completed")
    log_in(page, TENANT_KEY)
    page.goto("/ui/executions")
    expect(page.get_by_role("link", name=mine)).to_be_visible()
    expect(page.get_by_role("link", name=other)).to_have_count(0)
