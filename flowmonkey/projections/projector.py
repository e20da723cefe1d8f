"""The projector: consumes the events topic and applies batches to a projection.

On a projection that stores its own offsets (Postgres) the offsets are committed in
the same transaction as the rows; the memory projection starts from offset 0 every
time (its state is rebuilt from the log on each start).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from flowmonkey.errors import DecodeError
from flowmonkey.events.codec import decode_event
from flowmonkey.events.envelope import Event
from flowmonkey.log.base import Log
from flowmonkey.projections.base import Projection

log = logging.getLogger("flowmonkey.projector")

OnBatch = Callable[[Sequence[Event], bool], None]
"""Called after each applied batch with ``replayed=True`` for events that were already
in the log when the projector started (history rebuilt on start, not news)."""


class Projector:
    def __init__(self, log_: Log, topic: str, partitions: int, projection: Projection,
                 on_batch: OnBatch | None = None, *, batch_size: int = 2000) -> None:
        self.log = log_
        self.topic = topic
        self.partitions = partitions
        self.projection = projection
        self.on_batch = on_batch
        self.batch_size = batch_size
        self.positions = [0] * partitions
        self._tasks: list[asyncio.Task[None]] = []
        self._progress = asyncio.Event()

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._consume(p), name=f"fm-projector-{p}")
                       for p in range(self.partitions)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _consume(self, partition: int) -> None:
        offset = self.positions[partition]
        news_from = await self.log.end_offset(self.topic, partition)
        while True:
            records = await self.log.read(self.topic, partition, offset, self.batch_size)
            if not records:
                await self.log.wait_for(self.topic, partition, offset, 1.0)
                continue
            events: list[Event] = []
            for record in records:
                try:
                    events.append(decode_event(record.value))
                except DecodeError as exc:
                    log.error("skipping undecodable event %s:%d:%d: %s", record.topic,
                              record.partition, record.offset, exc)
            await self.projection.apply_events(events)
            offset = records[-1].offset + 1
            self.positions[partition] = offset
            if self.on_batch is not None:
                self.on_batch(events, offset <= news_from)
            self._progress.set()

    async def caught_up(self) -> bool:
        for partition in range(self.partitions):
            if self.positions[partition] < await self.log.end_offset(self.topic, partition):
                return False
        return True

    async def wait_for_position(self, partition: int, offset: int, timeout_s: float) -> bool:
        """Read-your-writes: wait until the projection applied records below ``offset``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.positions[partition] < offset:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), remaining)
        return True
