"""The forms topic: an engine publishes the forms it was given and adopts the others
it finds there, and a running engine (an API process) learns forms registered after
it started, so it can take their submissions."""

from __future__ import annotations

from pathlib import Path

from flowmonkey import Engine
from flowmonkey.log import EmbeddedLog
from flowmonkey.log.base import OutRecord
from flowmonkey.log.topics import Topics
from flowmonkey.model.form import Form
from flowmonkey.runtime.form_calls import FORMS
from tests.unit.api_support import GREET, eventually, greet

SIGNUP = Form.model_validate({"id": "signup", "flowId": "greet",
                              "schema": {"type": "object"}})
APPROVE = Form.model_validate({"id": "approve"})


async def test_an_engine_adopts_the_forms_another_published(tmp_path: Path) -> None:
    async with Engine(flows=[GREET], handlers=[greet], forms=[SIGNUP, APPROVE],
                      log=EmbeddedLog(path=tmp_path)):
        pass
    async with Engine(flows=[GREET], handlers=[greet], log=EmbeddedLog(path=tmp_path)) as e:
        assert sorted(f.id for f in e.forms.all()) == ["approve", "signup"]
        # ... and its form's partition decides their submissions
        assert (await e.submit_form("signup", {"name": "Ada"}, address="10.0.0.1")).accepted


async def test_a_running_engine_adopts_forms_registered_after_it_started() -> None:
    log = EmbeddedLog(partitions=2)
    async with Engine(flows=[GREET], handlers=[greet], log=log) as engine:
        assert engine.forms.get("signup") is None
        # another process's engine registers a form while this one runs
        await FORMS.publish(log, Topics(log.topic_prefix), [SIGNUP])

        async def adopted() -> bool:
            return engine.forms.get("signup") == SIGNUP

        await eventually(adopted, what="the running engine to adopt the new form")


async def test_an_unreadable_record_is_skipped_and_the_latest_definition_wins() -> None:
    log = EmbeddedLog(partitions=2)
    await log.start()
    try:
        topics = Topics(log.topic_prefix)
        await log.create_topics(topics.specs(2))
        await log.append([OutRecord(topics.forms, b"{not json", key=b"x", partition=0)])
        changed = SIGNUP.model_copy(update={"enabled": False})
        await FORMS.publish(log, topics, [SIGNUP, APPROVE])
        await FORMS.publish(log, topics, [changed])
        found, _ = await FORMS.read(log, topics)
        assert found == {"signup": changed, "approve": APPROVE}
    finally:
        await log.close()
