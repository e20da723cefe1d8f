"""Topics of definitions (triggers, forms): each compacted, one partition, keyed by the
definition's id, so every process on a log knows them (processors their event
triggers, the API its webhooks and forms, the topic consumer its topic triggers).

An engine given definitions publishes those that differ from what the topic holds (a
changed definition is a new record under the same key; compaction keeps the latest)
and adopts the others it finds there. What was given to this engine wins over the
topic: it is the deployment being started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from flowmonkey.log.base import Log, OutRecord
from flowmonkey.log.topics import Topics

log = logging.getLogger("flowmonkey.engine")

FOLLOW_POLL_S = 1.0
"""How long one wait for new definitions lasts before it is asked again."""

M = TypeVar("M", bound=BaseModel)
M_contra = TypeVar("M_contra", bound=BaseModel, contravariant=True)


class Book(Protocol[M_contra]):
    """Where a process keeps the definitions it knows (the engine's registry)."""

    def adopt(self, item: M_contra, /) -> None: ...


@dataclass(frozen=True, slots=True)
class DefinitionTopic(Generic[M]):
    """The topic (``topic_of`` the engine's topics) of ``model`` definitions."""

    model: type[M]
    what: str  # "trigger", "form": for messages
    topic_of: Callable[[Topics], str]

    @staticmethod
    def encoded(item: BaseModel) -> bytes:
        """A definition as its record's value: as written (camelCase)."""
        return item.model_dump_json(by_alias=True, exclude_none=True).encode()

    async def read(self, log_: Log, topics: Topics, offset: int = 0
                   ) -> tuple[dict[str, M], int]:
        """The latest readable definition of each id published from ``offset`` on (an
        unreadable record, e.g. from a newer version, is skipped with a warning), and
        the offset after the last record read."""
        topic = self.topic_of(topics)
        found: dict[str, M] = {}
        while True:
            records = await log_.read(topic, 0, offset, 1000)
            if not records:
                return found, offset
            for record in records:
                item = self._decoded(record.value, topic, record.offset)
                if item is not None:
                    key = str(getattr(item, "id", ""))
                    found.pop(key, None)
                    found[key] = item
            offset = records[-1].offset + 1

    def _decoded(self, value: bytes | None, topic: str, offset: int) -> M | None:
        if not value:  # a lost-record placeholder
            return None
        try:
            return self.model.model_validate_json(value)
        except (ValidationError, ValueError) as exc:
            with contextlib.suppress(Exception):
                log.warning("skipped an unreadable %s definition at %s offset %d: %s",
                            self.what, topic, offset, str(exc).splitlines()[0])
            return None

    async def follow(self, log_: Log, topics: Topics, book: Book[M], offset: int,
                     poll_s: float = FOLLOW_POLL_S) -> None:
        """Adopt into ``book`` every definition published from ``offset`` on, as it
        comes, until cancelled (a definition another process registers after this one
        started)."""
        topic = self.topic_of(topics)
        while True:
            try:
                if not await log_.wait_for(topic, 0, offset, poll_s):
                    continue
                found, offset = await self.read(log_, topics, offset)
            except Exception as exc:  # the log unreachable for a while: try again later
                log.warning("reading %s failed (%s); retrying in %.0f s", topic, exc, poll_s)
                await asyncio.sleep(poll_s)
                continue
            for item in found.values():
                book.adopt(item)

    async def publish(self, log_: Log, topics: Topics, items: Iterable[M]) -> None:
        """Append ``items`` to the topic, in one append."""
        topic = self.topic_of(topics)
        records = [OutRecord(topic, self.encoded(i), key=str(getattr(i, "id", "")).encode(),
                             partition=0) for i in items]
        if records:
            await log_.append(records)

    async def sync(self, log_: Log, topics: Topics, book: Book[M],
                   own: Iterable[M] = ()) -> list[M]:
        """Publish the ``own`` definitions the topic lacks or holds differently, and
        adopt into ``book`` the published ones of other ids; the ones published now."""
        published, _ = await self.read(log_, topics)
        mine = {str(getattr(i, "id", "")): i for i in own}
        for key, item in published.items():
            if key not in mine:
                book.adopt(item)
        changed = [i for key, i in mine.items() if published.get(key) != i]
        await self.publish(log_, topics, changed)
        return changed


__all__ = ["FOLLOW_POLL_S", "Book", "DefinitionTopic"]
