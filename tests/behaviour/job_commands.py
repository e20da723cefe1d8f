"""A worker's side of jobs, by hand: publish job commands to the commands topic and
read the job views the processors append to the jobs topic (no Worker involved)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import orjson

from flowmonkey.engine import Engine
from flowmonkey.events import names as n
from flowmonkey.events.codec import encode_command, headers_for
from flowmonkey.events.envelope import Command
from flowmonkey.log.base import OutRecord

_ids = itertools.count(1)


class JobCommands:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def send(self, type: str, execution_id: str, data: dict[str, Any]) -> str:
        """Publish a job command; its command id."""
        engine = self.engine
        command = Command(type=type, command_id=f"by-hand-{next(_ids)}",
                          execution_id=execution_id, timestamp_ms=engine.clock.now_ms(),
                          data=data)
        await engine.log.publish([OutRecord(
            engine.topics.commands, encode_command(command), key=execution_id.encode(),
            headers=headers_for(command.type, command.version))])
        return command.command_id

    async def views(self) -> list[dict[str, Any]]:
        """Every view on the jobs topic, in each partition's order."""
        engine = self.engine
        found: list[dict[str, Any]] = []
        for partition in range(engine.partitions):
            offset = 0
            while records := await engine.log.read(engine.topics.jobs, partition, offset, 1000):
                found += [orjson.loads(r.value) for r in records]
                offset = records[-1].offset + 1
        return found

    async def latest(self, job_id: str) -> dict[str, Any]:
        return [v for v in await self.views() if v["job_id"] == job_id][-1]

    async def pending(self, execution_id: str) -> dict[str, Any]:
        """The execution's job, once it is offered (its view pending)."""
        return await self._first(lambda v: v["execution_id"] == execution_id
                                 and v["status"] == "pending")

    async def answer(self, command_id: str) -> dict[str, Any]:
        """The view that answers the command (bounded wait)."""
        return await self._first(lambda v: (v.get("answer") or {}).get("command_id")
                                 == command_id)

    async def _first(self, wanted: Any) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while True:
            found = [v for v in await self.views() if wanted(v)]
            if found:
                return found[-1]
            assert loop.time() < deadline, "no such job view within 30 s"
            await asyncio.sleep(0.005)

    # -- one call per command, each returning the view that answers it

    async def claim(self, execution_id: str, job_id: str, worker_id: str = "w1") -> dict[str, Any]:
        return await self.answer(await self.send(
            n.CMD_JOB_CLAIM, execution_id, {"job_id": job_id, "worker_id": worker_id}))

    async def write(self, type: str, view: dict[str, Any], **data: Any) -> dict[str, Any]:
        """A write (heartbeat, progress, checkpoint, complete, fail, release) by the
        instance ``view`` names."""
        return await self.answer(await self.send(type, view["execution_id"], {
            "job_id": view["job_id"], "instance_id": view["instance_id"], **data}))
