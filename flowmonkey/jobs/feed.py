"""The jobs topic as a worker reads it.

Every partition is followed from its start (the topic is compacted to about one view
per job, so that is cheap) and only the latest view of each job counts: a job whose
latest view is pending, of a type the worker runs, is a candidate to claim; any
other view (claimed, ended) takes it off the candidates. Views that answer a command
(``answer.command_id``) go to whoever waits on that command.

Memory stays bounded by the open jobs: a candidate is a few ids (the claim's answer
brings the input), and a job seen ended is forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from flowmonkey.log.base import Log

log = logging.getLogger("flowmonkey.jobs")

_READ_BATCH = 500
_WAIT_S = 1.0
MAX_CANDIDATES = 1_000_000
"""Pending jobs a feed remembers at once (each a few ids); past it new ones are
dropped with a warning, and picked up again when they are offered anew."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """A pending job: what a claim needs."""

    job_id: str
    execution_id: str
    tenant_id: str | None
    type: str


class JobsFeed:
    def __init__(self, log_: Log, topic: str, types: Iterable[str],
                 on_candidate: Callable[[], None]) -> None:
        self.log = log_
        self.topic = topic
        self.types = frozenset(types)
        self.candidates: dict[str, Candidate] = {}  # job id -> the job, oldest first
        self.positions: list[int] = []
        self._on_candidate = on_candidate
        self._answers: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.failure: BaseException | None = None

    async def start(self) -> None:
        partitions = await self.log.partitions_for(self.topic)
        self.positions = [0] * partitions
        self._tasks = [asyncio.get_running_loop().create_task(
            self._follow(p), name=f"flowmonkey-jobs-feed-{p}") for p in range(partitions)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        for future in self._answers.values():
            future.cancel()
        self._answers.clear()

    # ------------------------------------------------------------------ answers

    def expect(self, command_id: str) -> asyncio.Future[dict[str, Any]]:
        """A future for the view that answers ``command_id`` (ask before sending it)."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._answers[command_id] = future
        return future

    def forget(self, command_id: str) -> None:
        self._answers.pop(command_id, None)

    @property
    def awaiting(self) -> int:
        """Commands whose answers are awaited."""
        return len(self._answers)

    # ------------------------------------------------------------------ position

    async def ends(self) -> list[int]:
        return [await self.log.end_offset(self.topic, p) for p in range(len(self.positions))]

    async def reached(self, ends: list[int]) -> bool:
        """True once every partition was read up to ``ends``."""
        return all(position >= end for position, end in zip(self.positions, ends, strict=True))

    # ------------------------------------------------------------------ reading

    async def _follow(self, partition: int) -> None:
        try:
            offset = 0
            while True:
                records = await self.log.read(self.topic, partition, offset, _READ_BATCH)
                if not records:
                    past = await self._past_markers(partition, offset)
                    if past > offset:
                        offset = self.positions[partition] = past
                    else:
                        await self.log.wait_for(self.topic, partition, offset, _WAIT_S)
                    continue
                for record in records:
                    if record.value:
                        self._take(record.value)
                offset = self.positions[partition] = records[-1].offset + 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failure = exc
            log.exception("reading %s[%d] stopped", self.topic, partition)
            raise

    async def _past_markers(self, partition: int, offset: int) -> int:
        """Past Kafka's transaction markers (they take offsets but are never read):
        when a read taken after the end offset still finds nothing."""
        end = await self.log.end_offset(self.topic, partition)
        if end <= offset or await self.log.read(self.topic, partition, offset, 1):
            return offset
        return end

    def _take(self, raw: bytes) -> None:
        try:
            view = orjson.loads(raw)
        except orjson.JSONDecodeError:
            log.warning("skipped an undecodable record on %s", self.topic)
            return
        if not isinstance(view, dict):
            return
        answer = view.get("answer")
        if isinstance(answer, dict):
            future = self._answers.pop(str(answer.get("command_id")), None)
            if future is not None and not future.done():
                future.set_result(view)
        job_id, status = view.get("job_id"), view.get("status")
        if not isinstance(job_id, str) or status == "unknown":
            return  # a refusal's view, which knows nothing of the job's state
        if status != "pending" or view.get("type") not in self.types:
            self.candidates.pop(job_id, None)
            return
        self.candidates.pop(job_id, None)  # re-offered: to the back of the line
        if len(self.candidates) >= MAX_CANDIDATES:
            log.warning("%d pending jobs remembered: job %s dropped until it is offered "
                        "again", MAX_CANDIDATES, job_id)
            return
        self.candidates[job_id] = Candidate(job_id, str(view["execution_id"]),
                                            view.get("tenant_id"), str(view["type"]))
        self._on_candidate()
