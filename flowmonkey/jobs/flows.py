"""The flows a worker's jobs belong to: its handlers get the job's step (and its
config), so the worker finds the flow on the flows topic, where every engine and
processor publishes the flows it runs."""

from __future__ import annotations

import asyncio
import contextlib

from flowmonkey.errors import FlowMonkeyError
from flowmonkey.handlers.registry import FlowRegistry
from flowmonkey.log.base import Log
from flowmonkey.model.flow import Flow

_RETRY_PAUSES_S = (0.0, 0.05, 0.2, 0.5, 1.0, 2.0)


class FlowLookup:
    """Flows by id and version: ``flows`` (an engine's own registry, when the worker
    runs in its process) or read from the flows topic, again only when it grew."""

    def __init__(self, log_: Log, topic: str, flows: FlowRegistry | None = None) -> None:
        self.log = log_
        self.topic = topic
        self.flows = flows if flows is not None else FlowRegistry()
        self._read_to = 0
        self._lock = asyncio.Lock()

    async def get(self, flow_id: str, version: str) -> Flow | None:
        """The flow, read from the topic if it is not known yet (retried for a few
        seconds: a flow published a moment ago may not be readable at once)."""
        flow = self.flows.get(flow_id, version)
        for pause_s in _RETRY_PAUSES_S:
            if flow is not None:
                break
            await asyncio.sleep(pause_s)
            async with self._lock:  # one reader at a time; the others find its flows
                flow = self.flows.get(flow_id, version)
                if flow is None:
                    await self._read_more()
                    flow = self.flows.get(flow_id, version)
        return flow

    async def _read_more(self) -> None:
        """Adopt the flows on the topic past what was read."""
        end = await self.log.end_offset(self.topic, 0)
        offset = self._read_to
        while offset < end:
            records = await self.log.read(self.topic, 0, offset, 1000)
            if not records:
                break  # only transaction markers left (or not readable yet: next time)
            for record in records:
                with contextlib.suppress(FlowMonkeyError, ValueError):
                    self.flows.adopt(Flow.model_validate_json(record.value))
            offset = records[-1].offset + 1
        self._read_to = offset
