"""The triggers topic: an engine publishes the triggers it was given (a changed one
again, under the same key) and adopts the others it finds there."""

from __future__ import annotations

from pathlib import Path

from flowmonkey import Engine
from flowmonkey.handlers.registry import TriggerRegistry
from flowmonkey.log import EmbeddedLog
from flowmonkey.log.base import OutRecord
from flowmonkey.log.topics import Topics
from flowmonkey.model.trigger import Trigger
from flowmonkey.runtime.trigger_sync import publish_triggers, read_published, sync_triggers
from tests.unit.api_support import GREET, eventually, greet

HOOK = Trigger.model_validate({"id": "hook", "kind": "webhook", "flowId": "greet",
                               "webhook": {"secret": "s"}})
NIGHTLY = Trigger.model_validate({"id": "nightly", "kind": "schedule", "flowId": "greet",
                                  "schedule": {"cron": "0 3 * * *"}})


async def _log() -> tuple[EmbeddedLog, Topics]:
    log = EmbeddedLog(partitions=2)
    await log.start()
    topics = Topics(log.topic_prefix)
    await log.create_topics(topics.specs(2))
    return log, topics


async def test_own_triggers_are_published_once_and_others_adopted() -> None:
    log, topics = await _log()
    try:
        first = TriggerRegistry()
        assert await sync_triggers(log, topics, first, [HOOK]) == [HOOK]
        # the same definition again: nothing new on the topic
        assert await sync_triggers(log, topics, first, [HOOK]) == []
        other = TriggerRegistry()
        assert await sync_triggers(log, topics, other, [NIGHTLY]) == [NIGHTLY]
        assert other.get("hook") == HOOK
        # a changed definition is published again; the latest one is read back
        changed = HOOK.model_copy(update={"flow_id": "other"})
        assert await sync_triggers(log, topics, TriggerRegistry(), [changed]) == [changed]
        published = await read_published(log, topics)
        assert published == {"hook": changed, "nightly": NIGHTLY}
    finally:
        await log.close()


async def test_an_unreadable_record_is_skipped() -> None:
    log, topics = await _log()
    try:
        await log.append([OutRecord(topics.triggers, b"{not json", key=b"x", partition=0)])
        await publish_triggers(log, topics, [HOOK])
        assert await read_published(log, topics) == {"hook": HOOK}
    finally:
        await log.close()


async def test_an_engine_adopts_the_triggers_another_published(tmp_path: Path) -> None:
    async with Engine(flows=[GREET], handlers=[greet], triggers=[HOOK, NIGHTLY],
                      log=EmbeddedLog(path=tmp_path)):
        pass
    async with Engine(flows=[GREET], handlers=[greet], log=EmbeddedLog(path=tmp_path)) as e:
        assert sorted(t.id for t in e.triggers.all()) == ["hook", "nightly"]


async def test_a_running_engine_adopts_triggers_published_after_it_started() -> None:
    log = EmbeddedLog(partitions=2)
    async with Engine(flows=[GREET], handlers=[greet], log=log) as engine:
        assert engine.triggers.get("hook") is None
        # another process's engine publishes a trigger while this one runs
        await publish_triggers(log, Topics(log.topic_prefix), [HOOK])
        async def adopted() -> bool:
            return engine.triggers.get("hook") == HOOK

        await eventually(adopted, what="the running engine to adopt the new trigger")
