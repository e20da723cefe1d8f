"""The explorer's jobs pages: the list with its filters and paging, one job, scoped to
the session's tenant, every value escaped."""

from __future__ import annotations

import pytest

from flowmonkey.api.ui import pages_jobs
from tests.unit.api_support import bearer
from tests.unit.test_api_jobs import job_of, jobs_engine, start
from tests.unit.ui.ui_support import ADMIN, KEY_A, KEY_B, login, ui_client

SCRIPT = "<script>alert(1)</script>"


async def test_jobs_are_listed_and_read_within_the_sessions_tenant() -> None:
    async with ui_client(engine=jobs_engine()) as (client, _):
        execution_id = await start(client, "export", bearer(KEY_A), {"rows": SCRIPT})
        job = await job_of(client, execution_id, bearer(KEY_A), "pending")
        other_execution = await start(client, "import", bearer(KEY_B))
        other = await job_of(client, other_execution, bearer(KEY_B), "pending")
        await login(client, KEY_A)
        listing = await client.get("/ui/jobs")
        assert listing.status_code == 200, listing.text
        assert f'href="/ui/jobs/{job["jobId"]}"' in listing.text
        assert other["jobId"] not in listing.text
        assert f'href="/ui/executions/{execution_id}"' in listing.text
        filtered = await client.get("/ui/jobs", params={"status": "claimed"})
        assert job["jobId"] not in filtered.text
        assert "No jobs match these filters." in filtered.text
        typed = await client.get("/ui/jobs", params={"type": "export", "status": "pending"})
        assert job["jobId"] in typed.text
        # the first page polls its rows, with its filters
        assert ('hx-get="/ui/jobs/rows?status=pending&amp;type=export" hx-trigger="every 2s"'
                in typed.text)
        rows = await client.get("/ui/jobs/rows", params={"type": "export",
                                                         "status": "pending"})
        assert rows.status_code == 200
        assert rows.text.startswith('<table class="list" id="job-rows"')
        assert job["jobId"] in rows.text
        assert other["jobId"] not in (await client.get("/ui/jobs/rows")).text
        one = await client.get(f"/ui/jobs/{job['jobId']}")
        assert one.status_code == 200
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in one.text
        assert SCRIPT not in one.text
        assert (await client.get(f"/ui/jobs/{other['jobId']}")).status_code == 404
        assert (await client.get("/ui/jobs/nope")).status_code == 404
        bad = await client.get("/ui/jobs", params={"status": "sleeping"})
        assert bad.status_code == 422
        assert "VALIDATION_ERROR" in bad.text
        await login(client, ADMIN)
        everything = await client.get("/ui/jobs")
        assert job["jobId"] in everything.text
        assert other["jobId"] in everything.text
        only_b = await client.get("/ui/jobs", params={"tenant": "tenant-b"})
        assert job["jobId"] not in only_b.text
        assert other["jobId"] in only_b.text


async def test_the_list_pages_by_cursor_keeping_its_filters(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pages_jobs, "PAGE_SIZE", 1)
    async with ui_client(engine=jobs_engine()) as (client, _):
        ids = []
        for _ in range(2):
            execution_id = await start(client, "export", bearer(KEY_A))
            ids.append((await job_of(client, execution_id, bearer(KEY_A), "pending"))["jobId"])
        await login(client, KEY_A)
        first = await client.get("/ui/jobs", params={"type": "export"})
        [newest, oldest] = reversed(ids)
        assert newest in first.text
        assert oldest not in first.text
        start_at = first.text.index('<a href="/ui/jobs?type=export&amp;cursor=')
        next_url = first.text[start_at:].split('"')[1].replace("&amp;", "&")
        second = await client.get(next_url)
        assert oldest in second.text
        assert newest not in second.text
        assert "First page" in second.text
        assert "hx-get" not in second.text.split('id="job-rows"')[1].split(">")[0]
        bad = await client.get("/ui/jobs", params={"cursor": "not-a-cursor"})
        assert bad.status_code == 400
        assert "INVALID_CURSOR" in bad.text
