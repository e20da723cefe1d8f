"""The triggers topic: trigger definitions live on it (compacted, one partition, keyed
by trigger id), so every process on a log knows them: processors the event triggers
(for their env), the API the webhooks, the topic consumer the topic triggers.

An engine given triggers publishes those that differ from what the topic holds (a
changed definition is a new record under the same key; compaction keeps the latest)
and adopts the others it finds there. What was given to this engine wins over the
topic: it is the deployment being started.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from typing import Protocol

from pydantic import ValidationError

from flowmonkey.log.base import Log, OutRecord
from flowmonkey.log.topics import Topics
from flowmonkey.model.trigger import Trigger

log = logging.getLogger("flowmonkey.engine")


class TriggerBook(Protocol):
    """Where a process keeps the triggers it knows (the engine's registry)."""

    def adopt(self, trigger: Trigger) -> None: ...


def encoded(trigger: Trigger) -> bytes:
    """A trigger as its record's value: the definition as written (camelCase)."""
    return trigger.model_dump_json(by_alias=True, exclude_none=True).encode()


async def read_published(log_: Log, topics: Topics) -> dict[str, Trigger]:
    """The latest readable definition of each trigger on the topic (an unreadable
    record, e.g. from a newer version, is skipped with a warning)."""
    found: dict[str, Trigger] = {}
    offset = 0
    while True:
        records = await log_.read(topics.triggers, 0, offset, 1000)
        if not records:
            break
        for record in records:
            if not record.value:  # a lost-record placeholder
                continue
            try:
                trigger = Trigger.model_validate_json(record.value)
            except (ValidationError, ValueError) as exc:
                with contextlib.suppress(Exception):
                    log.warning("skipped an unreadable trigger definition at %s offset "
                                "%d: %s", topics.triggers, record.offset,
                                str(exc).splitlines()[0])
                continue
            found.pop(trigger.id, None)
            found[trigger.id] = trigger
        offset = records[-1].offset + 1
    return found


async def publish_triggers(log_: Log, topics: Topics, triggers: Iterable[Trigger]) -> None:
    """Append ``triggers`` to the triggers topic, in one append."""
    records = [OutRecord(topics.triggers, encoded(t), key=t.id.encode(), partition=0)
               for t in triggers]
    if records:
        await log_.append(records)


async def sync_triggers(log_: Log, topics: Topics, book: TriggerBook,
                        own: Iterable[Trigger] = ()) -> list[Trigger]:
    """Publish the ``own`` triggers the topic lacks or holds differently, and adopt into
    ``book`` the published ones of other ids; the ones published now."""
    published = await read_published(log_, topics)
    mine = {t.id: t for t in own}
    for trigger in published.values():
        if trigger.id not in mine:
            book.adopt(trigger)
    changed = [t for t in mine.values() if published.get(t.id) != t]
    await publish_triggers(log_, topics, changed)
    return changed
