"""Topic names and specs (prefix configurable)."""

from __future__ import annotations

from dataclasses import dataclass

from flowmonkey.log.base import TopicSpec


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str = "flowmonkey"

    @property
    def commands(self) -> str:
        return f"{self.prefix}.commands"

    @property
    def events(self) -> str:
        return f"{self.prefix}.events"

    @property
    def flows(self) -> str:
        return f"{self.prefix}.flows"

    @property
    def dead_letter(self) -> str:
        return f"{self.prefix}.dead-letter"

    def specs(self, partitions: int) -> list[TopicSpec]:
        return [
            TopicSpec(self.commands, partitions),
            # the events are the source of truth (state is rebuilt from them): never
            # delete them by age or size, whatever the broker's default retention, and
            # never compact them (see processors/topic_checks.py)
            TopicSpec(self.events, partitions,
                      config={"retention.ms": "-1", "retention.bytes": "-1",
                              "cleanup.policy": "delete"}),
            TopicSpec(self.flows, 1, compacted=True),
            TopicSpec(self.dead_letter, 1),
        ]
