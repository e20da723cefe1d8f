"""The triggers topic: trigger definitions live on it (compacted, one partition, keyed
by trigger id), so every process on a log knows them: processors the event triggers
(for their env), the API the webhooks, the topic consumer the topic triggers.

An engine given triggers publishes those that differ from what the topic holds (a
changed definition is a new record under the same key; compaction keeps the latest)
and adopts the others it finds there. What was given to this engine wins over the
topic: it is the deployment being started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Protocol

from pydantic import ValidationError

from flowmonkey.log.base import Log, OutRecord
from flowmonkey.log.topics import Topics
from flowmonkey.model.trigger import Trigger

log = logging.getLogger("flowmonkey.engine")

FOLLOW_POLL_S = 1.0
"""How long one wait for new definitions lasts before it is asked again."""


class TriggerBook(Protocol):
    """Where a process keeps the triggers it knows (the engine's registry)."""

    def adopt(self, trigger: Trigger) -> None: ...


def encoded(trigger: Trigger) -> bytes:
    """A trigger as its record's value: the definition as written (camelCase)."""
    return trigger.model_dump_json(by_alias=True, exclude_none=True).encode()


async def read_published(log_: Log, topics: Topics) -> dict[str, Trigger]:
    """The latest readable definition of each trigger on the topic (an unreadable
    record, e.g. from a newer version, is skipped with a warning)."""
    found, _ = await read_published_from(log_, topics, 0)
    return found


async def read_published_from(log_: Log, topics: Topics,
                              offset: int) -> tuple[dict[str, Trigger], int]:
    """The latest readable definition of each trigger published from ``offset`` on,
    and the offset after the last record read."""
    found: dict[str, Trigger] = {}
    while True:
        records = await log_.read(topics.triggers, 0, offset, 1000)
        if not records:
            return found, offset
        for record in records:
            trigger = _decoded(record.value, topics, record.offset)
            if trigger is not None:
                found.pop(trigger.id, None)
                found[trigger.id] = trigger
        offset = records[-1].offset + 1


def _decoded(value: bytes | None, topics: Topics, offset: int) -> Trigger | None:
    if not value:  # a lost-record placeholder
        return None
    try:
        return Trigger.model_validate_json(value)
    except (ValidationError, ValueError) as exc:
        with contextlib.suppress(Exception):
            log.warning("skipped an unreadable trigger definition at %s offset %d: %s",
                        topics.triggers, offset, str(exc).splitlines()[0])
        return None


async def follow_published(log_: Log, topics: Topics, book: TriggerBook, offset: int,
                           poll_s: float = FOLLOW_POLL_S) -> None:
    """Adopt into ``book`` every definition published from ``offset`` on, as it comes,
    until cancelled: a processor learns an event trigger another process registers
    after it started (the first event it decides after adopting it may fire it)."""
    while True:
        try:
            if not await log_.wait_for(topics.triggers, 0, offset, poll_s):
                continue
            found, offset = await read_published_from(log_, topics, offset)
        except Exception as exc:  # the log unreachable for a while: try again later
            log.warning("reading %s failed (%s); retrying in %.0f s", topics.triggers,
                        exc, poll_s)
            await asyncio.sleep(poll_s)
            continue
        for trigger in found.values():
            book.adopt(trigger)


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
