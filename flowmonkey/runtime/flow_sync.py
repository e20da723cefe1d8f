"""The flows topic: flow definitions live on it (compacted, one partition, keyed by
``id@version``), so every engine and processor on a log sees the same flows."""

from __future__ import annotations

import contextlib

from flowmonkey.errors import FlowMonkeyError
from flowmonkey.handlers.registry import FlowRegistry
from flowmonkey.log.base import Log, OutRecord
from flowmonkey.log.topics import Topics
from flowmonkey.model.flow import Flow


async def sync_flows(log: Log, topics: Topics, flows: FlowRegistry) -> None:
    """Adopt the flows on the topic into ``flows``, then publish the ones ``flows``
    holds that the topic lacks."""
    known = await adopt_published(log, topics, flows)
    fresh = [f for f in flows.all() if f.ref not in known]
    if fresh:
        await publish_flows(log, topics, fresh)


async def adopt_published(log: Log, topics: Topics, flows: FlowRegistry) -> set[str]:
    """Adopt every readable flow on the topic; the refs (``id@version``) read."""
    known: set[str] = set()
    offset = 0
    while True:
        records = await log.read(topics.flows, 0, offset, 1000)
        if not records:
            break
        for record in records:
            with contextlib.suppress(FlowMonkeyError, ValueError):
                flow = Flow.model_validate_json(record.value)
                flows.adopt(flow)
                known.add(flow.ref)
        offset = records[-1].offset + 1
    return known


async def publish_flows(log: Log, topics: Topics, flows: list[Flow]) -> None:
    """Append ``flows`` to the flows topic, in one append."""
    await log.append([
        OutRecord(topics.flows, f.model_dump_json(by_alias=True).encode(),
                  key=f.ref.encode(), partition=0) for f in flows])
