"""FlowMonkey's topics on a broker with Apache Kafka's default settings
(``auto.create.topics.enable=true``, 7-day retention), as a user's cluster may have.

* looking whether a topic exists creates nothing (the broker would make it with its
  defaults: one partition, 7-day retention, no compaction);
* ``flowmonkey topics create`` makes the partitions asked for, events kept forever and
  flows compacted, and prints what it read back;
* ``topics create``, ``flowmonkey processor`` and an ``Engine`` refuse topics that would
  lose or misroute data (events deleted by age or size, flows not compacted, commands
  and events with different partition counts), with the command that fixes them;
* ``flowmonkey topics fix`` repairs the settings and keeps the topics' other ones, and
  refuses, with the reason, to touch partition counts.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from flowmonkey import Engine, Result, handler
from flowmonkey.errors import LogError
from flowmonkey.handlers.base import HandlerParams
from flowmonkey.log.kafka import KafkaLog
from flowmonkey.log.kafka_topics import TopicFacts, describe_topic_facts
from flowmonkey.log.topics import JOBS_CONFIGS, JOBS_RETENTION_MS, Topics
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.result import StepResult

pytestmark = pytest.mark.integration

FLOWMONKEY = str(Path(sys.executable).parent / "flowmonkey")
WEEK_MS = str(7 * 24 * 3600 * 1000)


@handler("noop")
async def noop(params: HandlerParams) -> StepResult:
    return Result.success({"step": params.step.id})


FLOW = {
    "id": "settings-flow", "version": "1", "initialStepId": "a",
    "steps": {"a": {"type": "noop", "outputKey": "a", "transitions": {"onSuccess": None}}},
}


@dataclass
class Done:
    code: int
    out: str
    err: str


async def _run(*args: str, bootstrap: str, prefix: str, timeout_s: float = 120) -> Done:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWMONKEY_")}
    env.update(FLOWMONKEY_KAFKA_BOOTSTRAP=bootstrap, FLOWMONKEY_TOPIC_PREFIX=prefix)
    process = await asyncio.create_subprocess_exec(
        FLOWMONKEY, *args, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(timeout_s):
        out, err = await process.communicate()
    assert process.returncode is not None
    return Done(process.returncode, out.decode(), err.decode())


@asynccontextmanager
async def _admin(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def _topics_named(bootstrap: str, prefix: str) -> list[str]:
    """The topics whose names start with ``prefix``: all topics' metadata (no topic
    named, so nothing is auto-created by asking)."""
    async with _admin(bootstrap) as admin:
        return sorted(str(t) for t in await admin.list_topics() if str(t).startswith(prefix))


async def _assert_not_auto_created(bootstrap: str, prefix: str, expected: list[str]) -> None:
    """Assert that the topics of ``prefix`` are ``expected``, once the broker has had
    the time to finish any auto-creation: it makes an auto-created topic after it
    answered (the first answer says "unknown topic"), so a control topic is asked for
    the way aiokafka asks (auto-creation allowed) and waited for first. The control
    also proves that this broker does auto-create, so the check is not vacuous."""
    control = f"{prefix}control"
    async with _admin(bootstrap) as admin:
        await admin.describe_topics([control])  # aiokafka lets the broker create it
        deadline = asyncio.get_running_loop().time() + 60
        while control not in await admin.list_topics():
            assert asyncio.get_running_loop().time() < deadline, "no auto-creation"
            await asyncio.sleep(0.05)
    assert [t for t in await _topics_named(bootstrap, prefix) if t != control] == expected


async def _facts(bootstrap: str, topics: Topics) -> dict[str, TopicFacts | None]:
    async with _admin(bootstrap) as admin:
        return await describe_topic_facts(admin, topics.names())


async def _fact(bootstrap: str, topic: str) -> TopicFacts:
    """One existing topic's partitions and settings, read back from the cluster."""
    async with _admin(bootstrap) as admin:
        fact = (await describe_topic_facts(admin, [topic]))[topic]
    assert fact is not None, f"{topic} is missing"
    return fact


async def _make(bootstrap: str, topics: Topics, *, commands: int = 2, events: int = 2,
                events_config: dict[str, str] | None = None,
                flows_config: dict[str, str] | None = None) -> None:
    """Make the topics the way a user (or auto-creation) might have."""
    right_events = {"retention.ms": "-1", "retention.bytes": "-1"}
    async with _admin(bootstrap) as admin:
        response = await admin.create_topics([
            NewTopic(topics.commands, commands, 1),
            NewTopic(topics.events, events, 1,
                     topic_configs=right_events if events_config is None else events_config),
            NewTopic(topics.flows, 1, 1, topic_configs=(
                {"cleanup.policy": "compact"} if flows_config is None else flows_config)),
            NewTopic(topics.dead_letter, 1, 1),
            NewTopic(topics.jobs, commands, 1, topic_configs=dict(JOBS_CONFIGS)),
            NewTopic(topics.triggers, 1, 1, topic_configs={"cleanup.policy": "compact"}),
            NewTopic(topics.forms, 1, 1, topic_configs={"cleanup.policy": "compact"}),
        ])
        assert all(code == 0 for _, code, *_ in response.topic_errors), response


def _engine(bootstrap: str, prefix: str) -> Engine:
    log = KafkaLog(bootstrap, topic_prefix=prefix, partitions=2, client_id=f"{prefix}client")
    return Engine(flows=[FLOW], handlers=[noop], log=log,
                  processor_group=f"{prefix}processor")


async def _engine_refuses(bootstrap: str, prefix: str) -> LogError:
    engine = _engine(bootstrap, prefix)
    try:
        with pytest.raises(LogError) as refused:
            await engine.start()
    finally:
        await engine.stop()
        await engine.log.close()
    assert refused.value.code == "LOG_TOPIC_SETTINGS"
    return refused.value


# ------------------------------------------------------------------ probing creates nothing


async def test_asking_for_a_missing_topic_does_not_create_it(
    kafka_default_bootstrap: str, kafka_default_prefix: str,
) -> None:
    topic = f"{kafka_default_prefix}absent"
    async with KafkaLog(kafka_default_bootstrap, client_id=f"{kafka_default_prefix}c") as log:
        with pytest.raises(LogError, match="is missing"):
            await log.partitions_for(topic)
        # the broker auto-creates a topic that a metadata request names: had it, the
        # topic would be listed now, with the broker's defaults
        await _assert_not_auto_created(kafka_default_bootstrap, kafka_default_prefix, [])
        assert await log.describe_topics([topic]) == {topic: None}
        await log.create_topics([])  # nothing to create: creates nothing either
    await _assert_not_auto_created(kafka_default_bootstrap, kafka_default_prefix, [])


async def test_topics_check_before_create_reports_them_missing_and_creates_nothing(
    kafka_default_bootstrap: str, kafka_default_prefix: str,
) -> None:
    done = await _run("topics", "check", bootstrap=kafka_default_bootstrap,
                      prefix=kafka_default_prefix)
    assert done.code == 1
    assert "missing on" in done.err
    assert "flowmonkey topics create" in done.err
    await _assert_not_auto_created(kafka_default_bootstrap, kafka_default_prefix, [])


# ------------------------------------------------------------------ topics create


async def test_topics_create_on_a_default_broker_makes_what_was_asked_for(
    kafka_default_bootstrap: str, kafka_default_prefix: str,
) -> None:
    topics = Topics(kafka_default_prefix)
    done = await _run("topics", "create", "--partitions", "3",
                      bootstrap=kafka_default_bootstrap, prefix=kafka_default_prefix)
    assert done.code == 0, done.err
    assert done.out.splitlines()[:7] == [
        f"created {topics.commands}  (3 partitions, cleanup.policy=delete, "
        f"retention.ms={WEEK_MS}, retention.bytes=-1)",
        f"created {topics.events}  (3 partitions, cleanup.policy=delete, kept forever)",
        f"created {topics.flows}  (1 partition, compacted)",
        f"created {topics.dead_letter}  (1 partition, cleanup.policy=delete, "
        f"retention.ms={WEEK_MS}, retention.bytes=-1)",
        f"created {topics.jobs}  (3 partitions, cleanup.policy=compact,delete, "
        f"retention.ms={JOBS_RETENTION_MS}, retention.bytes=-1)",
        f"created {topics.triggers}  (1 partition, compacted)",
        f"created {topics.forms}  (1 partition, compacted)",
    ]
    assert "7 created, 0 found" in done.out
    facts = await _facts(kafka_default_bootstrap, topics)
    assert {name: f.partitions for name, f in facts.items() if f is not None} == {
        topics.commands: 3, topics.events: 3, topics.flows: 1, topics.dead_letter: 1,
        topics.jobs: 3, topics.triggers: 1, topics.forms: 1}
    events = await _fact(kafka_default_bootstrap, topics.events)
    assert (events.config("retention.ms"), events.config("retention.bytes")) == ("-1", "-1")
    flows = await _fact(kafka_default_bootstrap, topics.flows)
    assert flows.config("cleanup.policy") == "compact"

    again = await _run("topics", "create", "--partitions", "3",
                       bootstrap=kafka_default_bootstrap, prefix=kafka_default_prefix)
    assert again.code == 0, again.err
    assert "0 created, 7 found" in again.out
    check = await _run("topics", "check", bootstrap=kafka_default_bootstrap,
                       prefix=kafka_default_prefix)
    assert check.code == 0, check.err
    assert "all 7 topics are right" in check.out


async def test_topics_create_refuses_an_existing_events_topic_that_deletes_events(
    kafka_default_bootstrap: str, kafka_default_prefix: str,
) -> None:
    topics = Topics(kafka_default_prefix)
    # what auto-creation makes: the broker's defaults
    await _make(kafka_default_bootstrap, topics, events_config={})
    done = await _run("topics", "create", "--partitions", "2",
                      bootstrap=kafka_default_bootstrap, prefix=kafka_default_prefix)
    assert done.code == 1
    assert f"found   {topics.events}  (2 partitions, cleanup.policy=delete, " \
           f"retention.ms={WEEK_MS}, retention.bytes=-1)" in done.out
    assert f"{topics.events} deletes events (retention.ms={WEEK_MS}; must be -1)" in done.err
    assert (f"kafka-configs.sh --bootstrap-server {kafka_default_bootstrap} --alter "
            f"--entity-type topics --entity-name {topics.events} "
            "--add-config retention.ms=-1") in done.err
    assert "flowmonkey topics fix" in done.err


# ------------------------------------------------------------------ refused starts


async def test_an_engine_refuses_an_events_topic_with_finite_retention(
    kafka_default_bootstrap: str, kafka_default_prefix: str,
) -> None:
    topics = Topics(kafka_default_prefix)
    await _make(kafka_default_bootstrap, topics,
                events_config={"retention.ms": "-1", "retention.bytes": "1073741824"})
    refused = await _engine_refuses(kafka_default_bootstrap, kafka_default_prefix)
    assert f"{topics.events} deletes events (retention.bytes=1073741824; must be -1)" \
        in str(refused)
    assert (f"--entity-name {topics.events} --add-config retention.bytes=-1"
            in str(refused))
    assert "flowmonkey topics fix" in str(refused)


async def test_an_engine_refuses_a_flows_topic_that_is_not_compacted(
    kafka_default_bootstrap: str, kafka_default_prefix: str,
) -> None:
    topics = Topics(kafka_default_prefix)
    await _make(kafka_default_bootstrap, topics, flows_config={})
    refused = await _engine_refuses(kafka_default_bootstrap, kafka_default_prefix)
    assert f"{topics.flows} is not compacted (cleanup.policy=delete; must be compact)" \
        in str(refused)
    assert (f"--entity-name {topics.flows} --add-config cleanup.policy=compact"
            in str(refused))


async def test_an_engine_refuses_commands_and_events_with_different_partition_counts(
    kafka_default_bootstrap: str, kafka_default_prefix: str,
) -> None:
    topics = Topics(kafka_default_prefix)
    await _make(kafka_default_bootstrap, topics, commands=2, events=3)
    refused = await _engine_refuses(kafka_default_bootstrap, kafka_default_prefix)
    assert f"{topics.commands} has 2 partitions but {topics.events} has 3" in str(refused)
    assert "partitions can only be added" in str(refused)


async def test_the_processor_command_refuses_to_start_on_wrong_topics(
    kafka_default_bootstrap: str, kafka_default_prefix: str, tmp_path: Path,
) -> None:
    topics = Topics(kafka_default_prefix)
    await _make(kafka_default_bootstrap, topics, events_config={}, flows_config={})
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "flow.yaml").write_text(
        "id: f\nversion: 1.0.0\ninitialStepId: done\nsteps:\n  done:\n    type: transform\n"
        "    config: { expression: \"'x'\" }\n    outputKey: x\n"
        "    transitions: { onSuccess: null }\n", encoding="utf-8")
    done = await _run("processor", "--flows-dir", str(flows), "--group",
                      f"{kafka_default_prefix}g", bootstrap=kafka_default_bootstrap,
                      prefix=kafka_default_prefix)
    assert done.code == 1, done.out + done.err
    assert f"{topics.events} deletes events" in done.err
    assert f"{topics.flows} is not compacted" in done.err
    assert "kafka-configs.sh" in done.err
    assert "flowmonkey topics fix" in done.err


async def test_an_engine_on_a_default_broker_makes_its_topics_right_and_runs(
    kafka_default_bootstrap: str, kafka_default_prefix: str,
) -> None:
    topics = Topics(kafka_default_prefix)
    async with _engine(kafka_default_bootstrap, kafka_default_prefix) as engine:
        created = await engine.create("settings-flow", {})
        done = await engine.wait(created.execution.id, timeout_s=60,
                                 until=(ExecutionStatus.COMPLETED, ExecutionStatus.FAILED))
        assert done.status == ExecutionStatus.COMPLETED
    events = await _fact(kafka_default_bootstrap, topics.events)
    assert events.partitions == 2
    assert (await _fact(kafka_default_bootstrap, topics.commands)).partitions == 2
    flows = await _fact(kafka_default_bootstrap, topics.flows)
    assert (events.config("retention.ms"), events.config("retention.bytes")) == ("-1", "-1")
    assert flows.config("cleanup.policy") == "compact"
    # nothing else of this prefix was auto-created along the way
    await _assert_not_auto_created(kafka_default_bootstrap, kafka_default_prefix,
                                   sorted(topics.names()))


# ------------------------------------------------------------------ topics fix


async def test_topics_fix_repairs_the_settings_and_keeps_the_others(
    kafka_default_bootstrap: str, kafka_default_prefix: str,
) -> None:
    topics = Topics(kafka_default_prefix)
    await _make(kafka_default_bootstrap, topics,
                events_config={"retention.ms": "86400000", "max.message.bytes": "2000000"},
                flows_config={"cleanup.policy": "compact,delete"})
    dry = await _run("topics", "fix", "--dry-run", bootstrap=kafka_default_bootstrap,
                     prefix=kafka_default_prefix)
    assert dry.code == 0, dry.err
    assert f"would set retention.ms=-1 on {topics.events}" in dry.out
    assert f"would set cleanup.policy=compact on {topics.flows}" in dry.out
    unchanged = await _fact(kafka_default_bootstrap, topics.events)
    assert unchanged.config("retention.ms") == "86400000"

    done = await _run("topics", "fix", bootstrap=kafka_default_bootstrap,
                      prefix=kafka_default_prefix)
    assert done.code == 0, done.err
    assert f"set retention.ms=-1 on {topics.events}" in done.out
    assert f"set cleanup.policy=compact on {topics.flows}" in done.out
    events = await _fact(kafka_default_bootstrap, topics.events)
    flows = await _fact(kafka_default_bootstrap, topics.flows)
    assert (events.config("retention.ms"), events.config("retention.bytes")) == ("-1", "-1")
    assert events.config("max.message.bytes") == "2000000"  # another override, kept
    assert flows.config("cleanup.policy") == "compact"
    again = await _run("topics", "fix", bootstrap=kafka_default_bootstrap,
                       prefix=kafka_default_prefix)
    assert again.code == 0, again.err
    assert "nothing to fix" in again.out
    # and now an engine starts on them
    async with _engine(kafka_default_bootstrap, kafka_default_prefix) as engine:
        assert engine.partitions == 2


async def test_topics_fix_refuses_to_change_partition_counts(
    kafka_default_bootstrap: str, kafka_default_prefix: str,
) -> None:
    topics = Topics(kafka_default_prefix)
    await _make(kafka_default_bootstrap, topics, commands=2, events=1)
    done = await _run("topics", "fix", bootstrap=kafka_default_bootstrap,
                      prefix=kafka_default_prefix)
    assert done.code == 1
    assert f"not fixed: {topics.commands} has 2 partitions but {topics.events} has 1" \
        in done.err
    assert "adding them moves executions' keys to other partitions" in done.err
    assert (await _fact(kafka_default_bootstrap, topics.events)).partitions == 1
