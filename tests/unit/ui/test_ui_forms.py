"""The explorer's forms pages: the forms a session may see, a form's submissions with
their status filter, one submission, scoped to the session's tenant and escaped."""

from __future__ import annotations

import re

from flowmonkey import Engine
from tests.unit.api_support import GREET, greet
from tests.unit.forms_support import CONTACT, LIMITED
from tests.unit.ui.ui_support import ADMIN, KEY_A, KEY_B, login, ui_client

SCRIPT = "<script>alert(1)</script>"


def _engine() -> Engine:
    return Engine(flows=[GREET], handlers=[greet], forms=[CONTACT, LIMITED])


async def test_forms_and_their_submissions_within_the_sessions_tenant() -> None:
    async with ui_client(engine=_engine()) as (client, _):
        taken = await client.post("/v1/forms/contact/submissions",
                                  json={"name": SCRIPT, "email": "ann@example.com"})
        assert taken.status_code == 201, taken.text
        submission_id = taken.json()["submissionId"]
        invalid = await client.post("/v1/forms/contact/submissions", json={"name": "Bo"})
        assert invalid.status_code == 422
        await login(client, KEY_A)
        listing = await client.get("/ui/forms")
        assert listing.status_code == 200
        assert 'href="/ui/forms/contact"' in listing.text
        assert "limited" not in listing.text
        form = await client.get("/ui/forms/contact")
        assert form.status_code == 200, form.text
        assert f'href="/ui/forms/contact/submissions/{submission_id}"' in form.text
        assert f'href="/ui/executions/{taken.json()["executionId"]}"' in form.text
        assert len(re.findall(r'href="/ui/forms/contact/submissions/', form.text)) == 2
        only_invalid = await client.get("/ui/forms/contact", params={"status": "invalid"})
        assert len(re.findall(r'href="/ui/forms/contact/submissions/',
                              only_invalid.text)) == 1
        assert submission_id not in only_invalid.text
        one = await client.get(f"/ui/forms/contact/submissions/{submission_id}")
        assert one.status_code == 200
        assert SCRIPT not in one.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in one.text
        [invalid_id] = re.findall(r'href="/ui/forms/contact/submissions/([^"]+)"',
                                  only_invalid.text)
        problems = await client.get(f"/ui/forms/contact/submissions/{invalid_id}")
        assert "&#39;email&#39; is a required property" in problems.text
        assert (await client.get("/ui/forms/limited")).status_code == 404
        assert (await client.get("/ui/forms/contact/submissions/nope")).status_code == 404
        assert (await client.get("/ui/forms/contact", params={"status": "odd"})).status_code \
            == 422
        await login(client, KEY_B)
        assert (await client.get("/ui/forms/contact")).status_code == 404
        assert (await client.get(f"/ui/forms/contact/submissions/{submission_id}")
                ).status_code == 404
        await login(client, ADMIN)
        everything = await client.get("/ui/forms")
        assert 'href="/ui/forms/contact"' in everything.text
        assert 'href="/ui/forms/limited"' in everything.text
