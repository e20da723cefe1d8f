"""What FlowMonkey's Kafka topics must be, and the fix for each way they can differ.

The events topic is the source of truth (DESIGN §1): processors rebuild their state
from it and the audit trail is it, so it must keep every record forever
(``retention.ms=-1``, ``retention.bytes=-1``) and never be compacted (compaction keeps
one record per key, and every event of an execution has its id as key). The commands
topic must not be compacted either (a command not yet processed would be dropped by a
later one for the same execution). The flows topic must be compacted
(``cleanup.policy=compact`` and nothing else: with ``delete`` too, old flow versions
would expire), and so must the triggers and forms topics (a definition would expire).
Commands and events must have the same partition count: an execution's commands and
events share a partition number.

A broker with ``auto.create.topics.enable=true`` (Kafka's default) makes any topic a
client names with its own defaults (one partition, 7-day retention, no compaction),
so a topic that exists is never assumed to be right: :func:`verify_topics` reads it
back and refuses to go on, with the command that repairs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from flowmonkey.errors import LogError
from flowmonkey.log.base import Log
from flowmonkey.log.kafka import require_kafka
from flowmonkey.log.kafka_topics import TopicFacts
from flowmonkey.log.topics import JOBS_RETENTION_MS, Topics

__all__ = [
    "TOPIC_SETTINGS_CODE",
    "TopicProblem",
    "kafka_configs_command",
    "problems_message",
    "topic_problems",
    "verify_topics",
]

TOPIC_SETTINGS_CODE = "LOG_TOPIC_SETTINGS"

#: the events topic's settings that must hold (anything else may be tuned)
EVENTS_CONFIGS: Mapping[str, str] = {
    "retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}
#: the flows topic's
FLOWS_CONFIGS: Mapping[str, str] = {"cleanup.policy": "compact"}


@dataclass(frozen=True, slots=True)
class TopicProblem:
    """One way a topic differs from what FlowMonkey needs. ``fix`` holds the settings
    that repair it; empty when no setting can (a partition-count mismatch)."""

    topic: str
    what: str
    fix: Mapping[str, str] = field(default_factory=dict)


def _policies(facts: TopicFacts) -> set[str]:
    return {p.strip() for p in (facts.config("cleanup.policy") or "delete").split(",")
            if p.strip()}


def _events_problems(facts: TopicFacts) -> list[TopicProblem]:
    problems: list[TopicProblem] = []
    finite = {name: facts.config(name) for name in ("retention.ms", "retention.bytes")
              if facts.config(name) != "-1"}
    if finite:
        said = ", ".join(f"{name}={value}" for name, value in finite.items())
        problems.append(TopicProblem(
            facts.name,
            f"{facts.name} deletes events ({said}; must be -1): processors rebuild their "
            "state from this topic, so executions and their audit trail would be lost",
            dict.fromkeys(finite, "-1")))
    if "compact" in _policies(facts):
        problems.append(TopicProblem(
            facts.name,
            f"{facts.name} is compacted (cleanup.policy={facts.config('cleanup.policy')}; "
            "must be delete): compaction keeps only the last event of each execution",
            {"cleanup.policy": "delete"}))
    return problems


def topic_problems(topics: Topics, facts: Mapping[str, TopicFacts | None]) -> list[TopicProblem]:
    """Every way the existing topics differ from what FlowMonkey needs (a missing topic
    is not a problem here: it is created, or reported missing, elsewhere)."""
    problems: list[TopicProblem] = []
    commands, events = facts.get(topics.commands), facts.get(topics.events)
    if events is not None:
        problems += _events_problems(events)
    if commands is not None and "compact" in _policies(commands):
        problems.append(TopicProblem(
            commands.name,
            f"{commands.name} is compacted (cleanup.policy="
            f"{commands.config('cleanup.policy')}; must be delete): a command not yet "
            "processed could be dropped", {"cleanup.policy": "delete"}))
    for name, what in ((topics.flows, "flow"), (topics.triggers, "trigger"),
                       (topics.forms, "form")):
        kept = facts.get(name)
        if kept is not None and _policies(kept) != {"compact"}:
            problems.append(TopicProblem(
                kept.name,
                f"{kept.name} is not compacted (cleanup.policy="
                f"{kept.config('cleanup.policy')}; must be compact): {what} definitions "
                "would be deleted with age", dict(FLOWS_CONFIGS)))
    jobs = facts.get(topics.jobs)
    if jobs is not None:
        problems += _jobs_problems(jobs, commands)
    if commands is not None and events is not None \
            and commands.partitions != events.partitions:
        problems.append(TopicProblem(
            events.name,
            f"{commands.name} has {commands.partitions} partitions but {events.name} has "
            f"{events.partitions}: an execution's commands and events share a partition "
            "number, so both need the same count. No setting repairs this: partitions can "
            "only be added, and adding them moves executions' keys to other partitions, "
            "away from their history. Recreate the topics (on a new topic prefix) with one "
            "count, or, if the topics hold nothing yet, delete and create them again"))
    return problems


def _jobs_problems(jobs: TopicFacts, commands: TopicFacts | None) -> list[TopicProblem]:
    """The jobs topic: a job's views go to its execution's partition number, so it
    needs the commands' count; and no open job's view may age out (jobs time out
    within 7 days)."""
    problems: list[TopicProblem] = []
    retention = jobs.config("retention.ms")
    if retention is not None and retention != "-1" and int(retention) < JOBS_RETENTION_MS:
        problems.append(TopicProblem(
            jobs.name, f"{jobs.name} deletes job views after {retention} ms (must be at "
            f"least {JOBS_RETENTION_MS}): an open job's view would age out",
            {"retention.ms": str(JOBS_RETENTION_MS)}))
    if commands is not None and jobs.partitions != commands.partitions:
        problems.append(TopicProblem(
            jobs.name, f"{commands.name} has {commands.partitions} partitions but "
            f"{jobs.name} has {jobs.partitions}: a job's views go to its execution's "
            "partition number. No setting repairs this: create the jobs topic again "
            "with the commands' count before the processors start"))
    return problems


def kafka_configs_command(bootstrap: str, topic: str, configs: Mapping[str, str],
                          secured: bool = False) -> str:
    """The ``kafka-configs.sh`` command that sets ``configs`` on ``topic``."""
    values = ",".join(f"{name}={value}" for name, value in configs.items())
    command = (f"kafka-configs.sh --bootstrap-server {bootstrap} --alter --entity-type "
               f"topics --entity-name {topic} --add-config {values}")
    if secured:
        command += " --command-config client.properties"
    return command


def problems_message(problems: list[TopicProblem], bootstrap: str, prefix: str,
                     secured: bool = False) -> str:
    """The problems, each with its fix, as one message."""
    lines = ["FlowMonkey's topics have settings that would lose or misroute data:"]
    for problem in problems:
        lines.append(f"  - {problem.what}")
        if problem.fix:
            lines.append("    fix: " + kafka_configs_command(bootstrap, problem.topic,
                                                             problem.fix, secured))
    if any(problem.fix for problem in problems):
        lines.append(f"  or run: flowmonkey topics fix --kafka-bootstrap {bootstrap} "
                     f"--topic-prefix {prefix}")
    return "\n".join(lines)


async def verify_topics(log_: Log, topics: Topics) -> dict[str, TopicFacts | None]:
    """Read FlowMonkey's topics back and raise :class:`LogError` (code
    ``LOG_TOPIC_SETTINGS``) naming each problem and its fix; the facts otherwise
    (a log with ``capabilities.shared_topics``: Kafka)."""
    log = require_kafka(log_, "verify_topics")
    facts = await log.describe_topics(topics.names())
    problems = topic_problems(topics, facts)
    if problems:
        raise LogError(
            problems_message(problems, log.bootstrap_servers, topics.prefix,
                             log.security.protocol != "PLAINTEXT"),
            code=TOPIC_SETTINGS_CODE, topics=sorted({p.topic for p in problems}))
    return facts
