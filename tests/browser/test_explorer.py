"""The explorer in headless Chromium, against a real ``flowmonkey api`` process:
log in, find an execution, open it, travel in time, resume, cancel, and see the
graph's marks. Each page is also saved as a screenshot (browser_support.shoot)."""

from __future__ import annotations

import json
import re

from playwright.sync_api import Dialog, Page, expect

from tests.browser.browser_support import TENANT_KEY, Server, log_in, order, shoot


def accept_confirmations(page: Page) -> list[str]:
    """Accept every confirm() the page asks (the actions ask first); their texts."""
    asked: list[str] = []

    def accept(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    return asked


def test_login_is_required_and_a_bad_key_is_refused(page: Page) -> None:
    page.goto("/ui/executions")
    expect(page).to_have_url(re.compile(r"/ui/login"))
    page.get_by_label("API key").fill("not-a-configured-key-at-all")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/ui/login"))
    expect(page.locator(".error")).to_be_visible()
    shoot(page, "login")


def test_find_an_execution_by_id_and_open_it(page: Page, server: Server) -> None:
    wanted = server.start("order-processing", order("B-1"), idempotencyKey="order-B-1")
    other = server.start("order-processing", order("B-2"), idempotencyKey="order-B-2")
    server.wait_status(wanted, "completed")
    log_in(page)
    # by idempotency key: the list shows that execution alone
    page.get_by_label("Search").fill("order-B-1")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("link", name=wanted)).to_be_visible()
    expect(page.get_by_role("link", name=other)).to_have_count(0)
    shoot(page, "executions-search")
    # by id: straight to its page
    page.get_by_label("Search").fill(wanted)
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(f"/ui/executions/{wanted}$"))
    expect(page.locator("#status")).to_have_text("completed")
    # the graph shows the path taken: express shipping, not standard
    graph = page.locator("#graph svg.flow-graph")
    expect(graph.locator('g.step.visited[data-step="express"]')).to_have_count(1)
    expect(graph.locator('g.step.visited[data-step="standard"]')).to_have_count(0)
    expect(graph.locator('g.edge.taken[data-from="shipping"][data-to="express"]')) \
        .to_have_count(1)
    shoot(page, "execution-completed")


def test_the_slider_shows_the_context_at_each_event(page: Page, server: Server) -> None:
    execution_id = server.start("order-processing", order("C-1"))
    done = server.wait_status(execution_id, "completed")
    log_in(page)
    page.goto(f"/ui/executions/{execution_id}")
    state = page.locator("#state-at")
    # at the last event the context has every step's output
    expect(state.locator(".state-at")).to_have_attribute("data-seq", str(done["seq"]))
    expect(state.locator(".context-at")).to_contain_text("confirmation")
    page.locator("#seq-slider").fill("1")  # the execution's creation
    expect(state.locator(".state-at")).to_have_attribute("data-seq", "1")
    expect(page.locator("#seq-out")).to_have_text("1")
    context = state.locator(".context-at")
    expect(context).not_to_contain_text("confirmation")
    expect(context).to_contain_text("C-1")
    shoot(page, "execution-time-travel")
    # a step's event: what it changed is listed
    page.locator("#seq-slider").fill(str(done["seq"]))
    expect(state.locator(".context-at")).to_contain_text("confirmation")


def test_resume_a_waiting_execution_and_see_it_complete_live(page: Page,
                                                             server: Server) -> None:
    execution_id = server.start("spend-approval", {"amount": 420})
    server.wait_status(execution_id, "waiting")
    asked = accept_confirmations(page)
    log_in(page)
    page.goto(f"/ui/executions/{execution_id}")
    expect(page.locator("#status")).to_have_text("waiting")
    graph = page.locator("#graph svg.flow-graph")
    expect(graph.locator('g.step.current[data-step="ask"]')).to_have_count(1)
    shoot(page, "execution-waiting")
    form = page.locator("#resume-form")
    expect(form.get_by_label("Resume token")).not_to_have_value("")  # filled in
    form.get_by_label("Data (JSON, optional)").fill(json.dumps({"approved": True,
                                                                "by": "grace"}))
    form.get_by_role("button", name="Resume").click()
    # the page updates itself: no reload
    expect(page.locator("#status")).to_have_text("completed")
    expect(page.locator("#context")).to_contain_text("grace")
    assert asked == ["Resume this execution?"]
    assert server.execution(execution_id)["status"] == "completed"
    shoot(page, "execution-resumed")


def test_a_refused_resume_shows_the_api_error(page: Page, server: Server) -> None:
    execution_id = server.start("spend-approval", {"amount": 421})
    server.wait_status(execution_id, "waiting")
    accept_confirmations(page)
    log_in(page)
    page.goto(f"/ui/executions/{execution_id}")
    form = page.locator("#resume-form")
    form.get_by_label("Resume token").fill("not-the-token")
    form.get_by_role("button", name="Resume").click()
    expect(page.locator("#flash")).to_contain_text("INVALID_TOKEN")
    assert server.execution(execution_id)["status"] == "waiting"


def test_cancel_an_execution(page: Page, server: Server) -> None:
    execution_id = server.start("spend-approval", {"amount": 999})
    server.wait_status(execution_id, "waiting")
    asked = accept_confirmations(page)
    log_in(page)
    page.goto(f"/ui/executions/{execution_id}")
    form = page.locator("#cancel-form")
    form.get_by_label("Reason (optional)").fill("over budget")
    form.get_by_role("button", name="Cancel execution").click()
    expect(page.locator("#status")).to_have_text("cancelled")
    expect(page.locator("#live")).to_contain_text("over budget")
    assert asked == ["Cancel this execution (and its children)?"]
    assert server.execution(execution_id)["status"] == "cancelled"
    shoot(page, "execution-cancelled")


def test_a_failed_step_is_marked_on_the_graph(page: Page, server: Server) -> None:
    execution_id = server.start("order-processing", order("D-1", qty="three"))
    server.wait_status(execution_id, "failed")
    log_in(page)
    page.goto(f"/ui/executions/{execution_id}")
    expect(page.locator("#status")).to_have_text("failed")
    graph = page.locator("#graph svg.flow-graph")
    failed = graph.locator('g.step.failed[data-step="validate"]')
    expect(failed).to_be_visible()
    expect(failed.locator(".badge-failed")).to_be_visible()
    expect(graph.locator("g.step.failed")).to_have_count(1)
    expect(graph.locator('g.step.visited[data-step="route"]')).to_have_count(0)
    # and the timeline row of the failed attempt shows its error
    expect(page.locator("table.timeline tr.failed").first).to_be_visible()
    shoot(page, "execution-failed")


def test_verify_compares_the_projection_with_the_log(page: Page, server: Server) -> None:
    execution_id = server.start("order-processing", order("F-1"))
    server.wait_status(execution_id, "completed")
    log_in(page)
    page.goto(f"/ui/executions/{execution_id}")
    page.get_by_role("button", name="Verify against the log").click()
    result = page.locator("#verify-result .verify")
    expect(result).to_have_attribute("data-result", "equal")
    expect(result).to_contain_text("Equal")


def test_a_tenant_key_sees_only_its_tenant(page: Page, server: Server) -> None:
    other = server.start("order-processing", order("E-1"))  # the admin's: no tenant
    mine = server.start("order-processing", order("E-2"), key=TENANT_KEY)
    server.wait_status(mine, "completed")
    log_in(page, TENANT_KEY)
    page.goto("/ui/executions")
    expect(page.get_by_role("link", name=mine)).to_be_visible()
    expect(page.get_by_role("link", name=other)).to_have_count(0)
    response = page.goto(f"/ui/executions/{other}")
    assert response is not None
    assert response.status == 404
    shoot(page, "executions-tenant")
