"""The explorer's page of one execution: header, graph, timeline, time travel, verify,
resume and cancel, live refresh; tenant scoping, CSRF and escaping."""

from __future__ import annotations

import re

import httpx

from tests.unit.ui.ui_support import ADMIN, KEY_A, KEY_B, csrf_of, login, settled, start, ui_client

SCRIPT = "<script>alert(1)</script>"


async def waiting_execution(client: httpx.AsyncClient, context: dict[str, str] | None = None
                            ) -> tuple[str, str]:
    """An APPROVE execution of tenant A waiting for its signal: (id, resume token)."""
    execution_id = await start(client, KEY_A, "approve", context or {})
    body = await settled(client, KEY_A, execution_id, "waiting")
    return execution_id, body["resumeToken"]


async def test_the_page_shows_header_graph_timeline_and_the_wait() -> None:
    async with ui_client() as (client, _):
        execution_id, _token = await waiting_execution(client, {"name": SCRIPT})
        await login(client, KEY_A)
        page = await client.get(f"/ui/executions/{execution_id}")
        assert page.status_code == 200
        html = page.text
        assert 'id="status">waiting<' in html
        assert "manager approval" in html
        assert 'href="/ui/flows/approve?version=1.0.0"' in html
        # the graph: the step it waits at is current
        assert re.search(r'class="step[^"]*current[^"]*"[^>]*data-step="ask"', html) or \
            re.search(r'data-step="ask"[^>]*class="step[^"]*current', html)
        seqs = [int(s) for s in re.findall(r'<tr data-seq="(\d+)"', html)]
        assert seqs == list(range(1, len(seqs) + 1))
        assert "execution.created" in html
        # it is not over: the page polls its live part
        assert f'hx-get="/ui/executions/{execution_id}/live?after=0"' in html
        # user data shows as text, never as markup
        assert SCRIPT not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


async def test_another_tenants_execution_is_the_same_404_as_a_missing_one() -> None:
    async with ui_client() as (client, _):
        theirs = await start(client, KEY_B, "greet")
        await login(client, KEY_A)
        hidden = await client.get(f"/ui/executions/{theirs}")
        missing = await client.get("/ui/executions/no-such-execution")
        assert hidden.status_code == missing.status_code == 404
        assert hidden.text.replace(theirs, "X") == missing.text.replace("no-such-execution", "X")
        for path in ("live", "at?at=1", "verify"):
            assert (await client.get(f"/ui/executions/{theirs}/{path}")).status_code == 404
        client.cookies.clear()
        await login(client, ADMIN)
        assert (await client.get(f"/ui/executions/{theirs}")).status_code == 200


async def test_the_live_part_stops_polling_once_the_execution_has_ended() -> None:
    async with ui_client() as (client, _):
        done = await start(client, KEY_A, "greet")
        await settled(client, KEY_A, done, "completed")
        waiting, _ = await waiting_execution(client)
        await login(client, KEY_A)
        live = await client.get(f"/ui/executions/{waiting}/live")
        assert live.status_code == 200
        assert "<html" not in live.text
        assert 'hx-trigger="every' in live.text
        ended = await client.get(f"/ui/executions/{done}/live")
        assert 'hx-trigger="every' not in ended.text
        assert 'id="status">completed<' in ended.text


async def test_time_travel_shows_the_context_at_an_event_and_what_it_changed() -> None:
    async with ui_client() as (client, _):
        done = await start(client, KEY_A, "greet", {"name": "Ada"})
        body = await settled(client, KEY_A, done, "completed")
        await login(client, KEY_A)
        first = await client.get(f"/ui/executions/{done}/at?at=1")
        assert first.status_code == 200
        assert 'data-seq="1"' in first.text
        assert "execution.created" in first.text
        assert '<tr class="added"><td class="mono added">context.name</td>' in first.text
        last = await client.get(f"/ui/executions/{done}/at?at={body['seq']}")
        assert "greeting" in last.text
        # the step that wrote the greeting changed the context: find that event
        changed_at = None
        for seq in range(1, body["seq"] + 1):
            text = (await client.get(f"/ui/executions/{done}/at?at={seq}")).text
            if "context.greeting" in text:
                changed_at = seq
                break
        assert changed_at is not None
        before = (await client.get(f"/ui/executions/{done}/at?at={changed_at - 1}")).text
        assert "greeting" not in before.split('class="context-at"')[1]
        # past the end is the last event; not a number is refused
        beyond = await client.get(f"/ui/executions/{done}/at?at=999")
        assert f'data-seq="{body["seq"]}"' in beyond.text
        assert (await client.get(f"/ui/executions/{done}/at?at=x")).status_code == 400
        # without scripts: the page itself renders the state asked for
        page = await client.get(f"/ui/executions/{done}?at=1")
        assert 'class="state-at" data-seq="1"' in page.text


async def test_verify_finds_the_projection_equal_to_the_log() -> None:
    async with ui_client() as (client, _):
        done = await start(client, KEY_A, "greet")
        await settled(client, KEY_A, done, "completed")
        await login(client, KEY_A)
        fragment = await client.get(f"/ui/executions/{done}/verify",
                                    headers={"HX-Request": "true"})
        assert fragment.status_code == 200
        assert 'data-result="equal"' in fragment.text
        whole = await client.get(f"/ui/executions/{done}/verify")
        assert "<html" in whole.text
        assert 'data-result="equal"' in whole.text


async def test_resume_from_the_page_needs_the_csrf_token_and_completes_it() -> None:
    async with ui_client() as (client, _):
        execution_id, token = await waiting_execution(client)
        await login(client, KEY_A)
        page = await client.get(f"/ui/executions/{execution_id}")
        csrf = csrf_of(page.text)
        assert f'name="token" value="{token}"' in page.text
        url = f"/ui/executions/{execution_id}/resume"
        forged = await client.post(url, data={"token": token, "data": "{}"})
        assert forged.status_code == 403
        assert "CSRF_FAILED" in forged.text
        wrong = await client.post(url, data={"csrf_token": csrf, "token": "not-the-token"})
        assert wrong.status_code == 400
        assert "INVALID_TOKEN" in wrong.text
        bad_json = await client.post(url, data={"csrf_token": csrf, "token": token,
                                                "data": "{not json"})
        assert bad_json.status_code == 422
        assert "VALIDATION_ERROR" in bad_json.text
        done = await client.post(url, data={"csrf_token": csrf, "token": token,
                                            "data": '{"approved": true}'})
        assert done.status_code == 303
        assert done.headers["location"] == f"/ui/executions/{execution_id}"
        body = await settled(client, KEY_A, execution_id, "completed")
        assert body["context"]["answer"] == {"approved": True}
        again = await client.post(url, data={"csrf_token": csrf, "token": token},
                                  headers={"HX-Request": "true"})
        assert again.status_code == 409
        assert "TOKEN_USED" in again.text or "NOT_WAITING" in again.text
        assert again.headers["hx-retarget"] == "#flash"


async def test_resume_by_htmx_answers_a_message_and_refreshes_the_live_part() -> None:
    async with ui_client() as (client, _):
        execution_id, token = await waiting_execution(client)
        await login(client, KEY_A)
        csrf = csrf_of((await client.get(f"/ui/executions/{execution_id}")).text)
        answer = await client.post(f"/ui/executions/{execution_id}/resume",
                                   data={"token": token},
                                   headers={"HX-Request": "true", "X-CSRF-Token": csrf})
        assert answer.status_code == 200
        assert "Resumed" in answer.text
        assert answer.headers["hx-trigger"] == "fm-refresh"


async def test_cancel_from_the_page_and_a_refused_cancel_shows_the_api_code() -> None:
    async with ui_client() as (client, _):
        execution_id, _token = await waiting_execution(client)
        done = await start(client, KEY_A, "greet")
        await settled(client, KEY_A, done, "completed")
        await login(client, KEY_A)
        csrf = csrf_of((await client.get(f"/ui/executions/{execution_id}")).text)
        cancelled = await client.post(f"/ui/executions/{execution_id}/cancel",
                                      data={"csrf_token": csrf, "reason": "not needed"})
        assert cancelled.status_code == 303
        body = await settled(client, KEY_A, execution_id, "cancelled")
        assert body["cancellation"]["reason"] == "not needed"
        refused = await client.post(f"/ui/executions/{done}/cancel",
                                    data={"csrf_token": csrf})
        assert refused.status_code == 409
        assert "NOT_CANCELLABLE" in refused.text


async def test_a_tenant_cannot_act_on_another_tenants_execution() -> None:
    async with ui_client() as (client, _):
        execution_id, token = await waiting_execution(client)
        await login(client, KEY_B)
        csrf = csrf_of((await client.get("/ui/executions")).text)
        for action, data in (("resume", {"token": token}), ("cancel", {})):
            answer = await client.post(f"/ui/executions/{execution_id}/{action}",
                                       data={"csrf_token": csrf, **data})
            assert answer.status_code == 404
        await settled(client, KEY_A, execution_id, "waiting")


async def test_the_timeline_is_paged() -> None:
    from flowmonkey.api.ui import pages_executions

    async with ui_client() as (client, _):
        done = await start(client, KEY_A, "greet")
        body = await settled(client, KEY_A, done, "completed")
        await login(client, KEY_A)
        old = pages_executions.TIMELINE_PAGE
        pages_executions.TIMELINE_PAGE = 2
        try:
            first = await client.get(f"/ui/executions/{done}")
            assert re.findall(r'<tr data-seq="(\d+)"', first.text) == ["1", "2"]
            assert f'href="/ui/executions/{done}?after=2" rel="next"' in first.text
            second = await client.get(f"/ui/executions/{done}?after=2")
            assert re.findall(r'<tr data-seq="(\d+)"', second.text) == ["3", "4"]
            assert f'href="/ui/executions/{done}?after=0"' in second.text
            last = await client.get(f"/ui/executions/{done}?after={body['seq'] - 1}")
            assert re.findall(r'<tr data-seq="(\d+)"', last.text) == [str(body["seq"])]
            assert 'rel="next"' not in last.text
        finally:
            pages_executions.TIMELINE_PAGE = old
