"""The triggers topic (``<prefix>.triggers``): trigger definitions live on it, so every
process on a log knows them: processors the event triggers (for their env), the API
the webhooks, the topic consumer the topic triggers. How it is kept in step is
:class:`~flowmonkey.runtime.definition_topic.DefinitionTopic`'s (shared with forms).
"""

from __future__ import annotations

from collections.abc import Iterable

from flowmonkey.log.base import Log
from flowmonkey.log.topics import Topics
from flowmonkey.model.trigger import Trigger
from flowmonkey.runtime.definition_topic import FOLLOW_POLL_S, Book, DefinitionTopic

TRIGGERS: DefinitionTopic[Trigger] = DefinitionTopic(Trigger, "trigger",
                                                     lambda topics: topics.triggers)


async def read_published(log_: Log, topics: Topics) -> dict[str, Trigger]:
    """The latest readable definition of each trigger on the topic."""
    found, _ = await TRIGGERS.read(log_, topics)
    return found


async def follow_published(log_: Log, topics: Topics, book: Book[Trigger], offset: int,
                           poll_s: float = FOLLOW_POLL_S) -> None:
    """Adopt into ``book`` every trigger published from ``offset`` on, as it comes,
    until cancelled: a processor learns an event trigger another process registers
    after it started (the first event it decides after adopting it may fire it)."""
    await TRIGGERS.follow(log_, topics, book, offset, poll_s)


async def publish_triggers(log_: Log, topics: Topics, triggers: Iterable[Trigger]) -> None:
    """Append ``triggers`` to the triggers topic, in one append."""
    await TRIGGERS.publish(log_, topics, triggers)


async def sync_triggers(log_: Log, topics: Topics, book: Book[Trigger],
                        own: Iterable[Trigger] = ()) -> list[Trigger]:
    """Publish the ``own`` triggers the topic lacks or holds differently, and adopt into
    ``book`` the published ones of other ids; the ones published now."""
    return await TRIGGERS.sync(log_, topics, book, own)


__all__ = ["TRIGGERS", "follow_published", "publish_triggers", "read_published",
           "sync_triggers"]
