"""What the trigger crash tests share: following the events topic as it grows, the
processor that owns a partition (from its progress lines), and the figures the tests
measure (printed as a JSON line and kept in ``FIGURES``, for the closing note)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from flowmonkey.events.codec import decode_event
from flowmonkey.events.envelope import Event
from flowmonkey.log.kafka import KafkaLog
from tests.recovery.crash_support import Proc

FIGURES = Path("/tmp/flowmonkey-trigger-figures.json")
_OWNED = re.compile(r"processor: partitions ([0-9,]+):")


class EventTail:
    """The events topic, read on from where the last :meth:`poll` stopped."""

    def __init__(self, log: KafkaLog, topic: str, partitions: int) -> None:
        self.log = log
        self.topic = topic
        self.next = dict.fromkeys(range(partitions), 0)
        self.events: list[Event] = []

    async def poll(self) -> list[Event]:
        new: list[Event] = []
        for partition, offset in self.next.items():
            while records := await self.log.read(self.topic, partition, offset, 5000):
                new.extend(decode_event(r.value) for r in records)
                offset = records[-1].offset + 1
            self.next[partition] = offset
        self.events.extend(new)
        return new


def owns(proc: Proc, partition: int) -> bool:
    """Whether the processor's latest progress line lists ``partition``."""
    for line in reversed(proc.lines):
        found = _OWNED.search(line)
        if found:
            return partition in {int(p) for p in found.group(1).split(",")}
    return False


def record_figures(name: str, figures: dict[str, Any]) -> None:
    """Print the figures as one JSON line and merge them into ``FIGURES``."""
    print(json.dumps({"trigger_figures": name, **figures}, sort_keys=True), flush=True)
    try:
        known = json.loads(FIGURES.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    known[name] = figures
    FIGURES.write_text(json.dumps(known, indent=2, sort_keys=True) + "\n", encoding="utf-8")
