"""Topic names and specs (prefix configurable)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from flowmonkey.log.base import DEFAULT_TOPIC_PREFIX, Log, TopicSpec

JOBS_RETENTION_MS = 8 * 24 * 60 * 60_000
#: the jobs topic's settings
JOBS_CONFIGS: Mapping[str, str] = {"cleanup.policy": "compact,delete",
                                   "retention.ms": str(JOBS_RETENTION_MS)}


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str = DEFAULT_TOPIC_PREFIX

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

    @property
    def jobs(self) -> str:
        """The workers' feed: each job's view, keyed by job id (kernel/jobs.py)."""
        return f"{self.prefix}.jobs"

    @property
    def triggers(self) -> str:
        """Trigger definitions, keyed by trigger id (compacted, like the flows)."""
        return f"{self.prefix}.triggers"

    @property
    def forms(self) -> str:
        """Form definitions, keyed by form id (compacted, like the triggers)."""
        return f"{self.prefix}.forms"

    def names(self) -> list[str]:
        """Every topic FlowMonkey keeps under this prefix, in the order of :meth:`specs`."""
        return [self.commands, self.events, self.flows, self.dead_letter, self.jobs,
                self.triggers, self.forms]

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
            # a job's views go to its execution's partition number; compacted to about
            # one record per job, and kept past the longest job timeout (7 days), so
            # no open job's record ages out
            TopicSpec(self.jobs, partitions, config=dict(JOBS_CONFIGS)),
            # the latest definition of each trigger and form (runtime/definition_topic.py)
            TopicSpec(self.triggers, 1, compacted=True),
            TopicSpec(self.forms, 1, compacted=True),
        ]


def topics_of(log: Log, topic_prefix: str | None = None, *, owner: str = "Engine") -> Topics:
    """The topics of ``log``, named by its ``topic_prefix`` (the one source of the
    prefix). ``topic_prefix``, when a caller still gives one (``owner`` names it in
    the message), must be the log's: a different one is refused, since using either
    would silently put a deployment on another one's topics."""
    if topic_prefix is not None and topic_prefix != log.topic_prefix:
        kind = type(log).__name__
        raise ValueError(
            f"{owner}(topic_prefix={topic_prefix!r}) differs from the topic prefix of "
            f"its log, {kind}(topic_prefix={log.topic_prefix!r}); the log's prefix names "
            f"the topics. Give the prefix once, to the log: "
            f"{kind}(..., topic_prefix={topic_prefix!r}), and leave "
            f"{owner}(topic_prefix=...) out")
    return Topics(log.topic_prefix)
