"""An execution's state rebuilt from the events topic (not the projection)."""

from __future__ import annotations

from flowmonkey.events.codec import decode_event
from flowmonkey.events.envelope import Event
from flowmonkey.kernel.apply import replay as replay_events
from flowmonkey.log.base import Log
from flowmonkey.log.partitioner import partition_for
from flowmonkey.model.execution import Execution


async def replay_execution(log_: Log, events_topic: str, partitions: int, execution_id: str,
                           upto_seq: int | None = None) -> Execution | None:
    """Fold the execution's events (up to ``upto_seq``) read from its partition."""
    partition = partition_for(execution_id.encode(), partitions)
    key = execution_id.encode()
    events: list[Event] = []
    offset = 0
    while True:
        records = await log_.read(events_topic, partition, offset, 5000)
        if not records:
            break
        for record in records:
            if record.key == key:
                event = decode_event(record.value)
                if event.seq > 0:
                    events.append(event)
        offset = records[-1].offset + 1
    state = replay_events(events, upto_seq)
    return state.to_execution() if state is not None else None
