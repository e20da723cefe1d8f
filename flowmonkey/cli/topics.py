"""``flowmonkey topics create|check|fix``: make FlowMonkey's topics, and check and
repair their settings (on Kafka; see :mod:`flowmonkey.processors.topic_checks`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

from flowmonkey.cli.common import EXIT_FAILED, EXIT_OK, CliError
from flowmonkey.cli.options import add_actions, add_command, add_settings_options
from flowmonkey.cli.settings import log_unreachable, settings_from_args

if TYPE_CHECKING:
    from flowmonkey.cli.options import Subparsers
    from flowmonkey.log.base import Log, TopicSpec
    from flowmonkey.log.kafka import KafkaLog
    from flowmonkey.log.kafka_topics import TopicFacts
    from flowmonkey.log.topics import Topics
    from flowmonkey.settings import Settings

EPILOG = """\
Creates PREFIX.commands and PREFIX.events with the configured partitions (events kept
forever: retention.ms=-1, retention.bytes=-1), PREFIX.flows (compacted, one partition),
PREFIX.dead-letter (one partition), PREFIX.jobs, PREFIX.triggers and PREFIX.forms
(compacted, one partition), then reads them back from the cluster and prints what it
has. Topics that exist are left as they are and reported as found, so this is safe to
run on every deploy; existing topics whose settings would lose data (events deleted by
age or size, flows, triggers or forms not compacted, commands and events with different
partition counts)
fail the command with the fix (see `topics fix`). It never lets the broker auto-create
a topic with its defaults. Kafka cannot shrink a topic: choose the
partition count with room to grow (it bounds how many processor and projector
instances can share the work).

examples:
  flowmonkey topics create --kafka-bootstrap localhost:9092 --partitions 24
  FLOWMONKEY_KAFKA_BOOTSTRAP=kafka:9092 FLOWMONKEY_TOPIC_PREFIX=shop flowmonkey topics create
  flowmonkey topics create --data-dir ./state          # the durable embedded log

exit codes: 0 created or found, 1 the log could not be used or a topic's settings
            would lose data, 2 bad input
"""

CHECK_EPILOG = """\
Reads FlowMonkey's topics from the cluster (creating nothing) and prints their
partitions and the settings that matter; fails on a missing topic or settings that
would lose data, with the fix for each.

examples:
  flowmonkey topics check --kafka-bootstrap localhost:9092

exit codes: 0 all topics right, 1 a topic is missing or wrong (or Kafka could not be
            used), 2 bad input
"""

FIX_EPILOG = """\
Changes the settings of FlowMonkey's existing topics that would lose data: the events
topic gets retention.ms=-1 and retention.bytes=-1 (and is never compacted), the flows,
triggers and forms topics cleanup.policy=compact, the commands topic is never compacted.
Other settings of the topics are kept. A partition-count mismatch between commands and events is not
repaired: partitions can only be added, and adding them sends an execution's later
commands and events to another partition than its history (the key decides the
partition), so the command explains and fails instead. Events already deleted by a
finite retention cannot be brought back.

examples:
  flowmonkey topics fix --kafka-bootstrap localhost:9092 --dry-run
  flowmonkey topics fix --kafka-bootstrap localhost:9092

exit codes: 0 nothing left to fix, 1 something could not be fixed (or Kafka could not
            be used), 2 bad input
"""


def register_topics(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers, "topics", help="manage FlowMonkey's topics",
        description="Manage the topics FlowMonkey uses (`topics create`, `check`, `fix`).",
        epilog="examples:\n  flowmonkey topics create --kafka-bootstrap localhost:9092\n"
               "  flowmonkey topics check --kafka-bootstrap localhost:9092\n"
               "  flowmonkey topics create --help")
    actions = add_actions(parser, "topics_action", "create, check or fix")
    create = add_command(
        actions, "create", help="create the commands, events, flows and dead-letter topics",
        description="Create the commands, events, flows (compacted) and dead-letter "
                    "topics on Kafka or the durable embedded log; existing ones are kept.",
        epilog=EPILOG)
    add_settings_options(create, postgres=False)
    create.set_defaults(func=run_create)
    check = add_command(
        actions, "check", help="show the topics' partitions and settings; fail on wrong ones",
        description="Check FlowMonkey's topics on Kafka without changing anything.",
        epilog=CHECK_EPILOG)
    add_settings_options(check, partitions=False, postgres=False, data_dir=False,
                         embedded=False, creates_topics=False)
    check.set_defaults(func=run_check)
    fix = add_command(
        actions, "fix", help="repair the topics' settings that would lose data",
        description="Set the retention and cleanup policy FlowMonkey's topics need on Kafka.",
        epilog=FIX_EPILOG)
    add_settings_options(fix, partitions=False, postgres=False, data_dir=False,
                         embedded=False, creates_topics=False)
    fix.add_argument("--dry-run", action="store_true",
                     help="print the changes without making them")
    fix.set_defaults(func=run_fix)


def run_create(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if settings.log_kind == "memory":
        raise CliError(
            "no log to create topics in: set FLOWMONKEY_KAFKA_BOOTSTRAP or pass "
            "--kafka-bootstrap (or FLOWMONKEY_DATA_DIR / --data-dir for the durable "
            "embedded log)",
            hint="e.g. flowmonkey topics create --kafka-bootstrap localhost:9092")
    return asyncio.run(_create(settings))


def _kafka_settings(args: argparse.Namespace, action: str) -> Settings:
    settings = settings_from_args(args)
    if settings.log_kind != "kafka":
        raise CliError(
            f"`topics {action}` works on Kafka: set FLOWMONKEY_KAFKA_BOOTSTRAP or pass "
            "--kafka-bootstrap (the embedded log has no topic settings to check)",
            hint=f"e.g. flowmonkey topics {action} --kafka-bootstrap localhost:9092")
    return settings


def run_check(args: argparse.Namespace) -> int:
    return asyncio.run(_check(_kafka_settings(args, "check")))


def run_fix(args: argparse.Namespace) -> int:
    return asyncio.run(_fix(_kafka_settings(args, "fix"), dry_run=args.dry_run))


def _kafka_log(settings: Settings) -> KafkaLog:
    from flowmonkey.log.kafka import KafkaLog

    log = settings.make_log(client_id="flowmonkey-topics")
    if not isinstance(log, KafkaLog):  # _kafka_settings made sure of it
        raise CliError(f"not a Kafka log: {settings.describe_log()}")
    return log


def _names(topics: Topics) -> list[str]:
    return topics.names()


async def _create(settings: Settings) -> int:
    from flowmonkey.errors import LogError
    from flowmonkey.log.kafka import KafkaLog
    from flowmonkey.log.topics import Topics

    log = settings.make_log(client_id="flowmonkey-topics")
    topics = Topics(log.topic_prefix)
    specs = topics.specs(settings.partitions)
    try:
        await log.start()
        if isinstance(log, KafkaLog):
            return await _create_on_kafka(log, topics, specs, settings)
        found = {spec.name: await _partitions(log, spec) for spec in specs}
        missing = [spec for spec in specs if found[spec.name] is None]
        await log.create_topics(missing)
        # what the log has now, never what was asked for
        have = {spec.name: await log.partitions_for(spec.name) for spec in specs}
    except LogError as exc:
        raise log_unreachable(exc, settings) from None
    finally:
        await log.close()
    for spec in specs:
        what = "found  " if found[spec.name] is not None else "created"
        count = have[spec.name]
        detail = f"{count} partition{'s' if count != 1 else ''}"
        if spec.compacted:
            detail += ", compacted"
        print(f"{what} {spec.name}  ({detail})")
    created = len(missing)
    print(f"{created} created, {len(specs) - created} found, on {settings.describe_log()}")
    return _check_counts(topics.commands, topics.events, settings.partitions, have)


async def _create_on_kafka(log: KafkaLog, topics: Topics, specs: list[TopicSpec],
                           settings: Settings) -> int:
    from flowmonkey.processors.topic_checks import problems_message, topic_problems

    names = _names(topics)
    # the admin API's metadata, asking the broker not to create what is missing: a
    # producer's or consumer's request would make it with the broker's defaults
    before = await log.describe_topics(names)
    missing = [spec for spec in specs if before[spec.name] is None]
    await log.create_topics(missing)
    facts = await log.describe_topics(names)
    for name in names:
        what = "found  " if before[name] is not None else "created"
        print(f"{what} {name}  ({_describe(facts[name])})")
    print(f"{len(missing)} created, {len(specs) - len(missing)} found, "
          f"on {settings.describe_log()}")
    have = {name: fact.partitions for name, fact in facts.items() if fact is not None}
    _warn_counts(topics.commands, topics.events, settings.partitions, have)
    problems = topic_problems(topics, facts)
    if problems:
        print("error: " + problems_message(problems, log.bootstrap_servers, topics.prefix,
                                           log.security.protocol != "PLAINTEXT"),
              file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _describe(facts: TopicFacts | None) -> str:
    """The partitions and the settings that matter, as the cluster has them."""
    if facts is None:
        return "missing"
    parts = [f"{facts.partitions} partition{'s' if facts.partitions != 1 else ''}"]
    policy = facts.config("cleanup.policy")
    if policy == "compact":
        parts.append("compacted")
    else:
        parts.append(f"cleanup.policy={policy}")
        retention = (facts.config("retention.ms"), facts.config("retention.bytes"))
        parts.append("kept forever" if retention == ("-1", "-1") else
                     f"retention.ms={retention[0]}, retention.bytes={retention[1]}")
    return ", ".join(parts)


async def _check(settings: Settings) -> int:
    from flowmonkey.errors import LogError
    from flowmonkey.log.topics import Topics
    from flowmonkey.processors.topic_checks import problems_message, topic_problems

    log = _kafka_log(settings)
    topics = Topics(log.topic_prefix)
    try:
        await log.start()
        facts = await log.describe_topics(_names(topics))
    except LogError as exc:
        raise log_unreachable(exc, settings) from None
    finally:
        await log.close()
    for name, fact in facts.items():
        print(f"{name}  ({_describe(fact)})")
    missing = [name for name, fact in facts.items() if fact is None]
    problems = topic_problems(topics, facts)
    code = EXIT_OK
    if missing:
        print(f"error: missing on {settings.describe_log()}: {', '.join(missing)}; create "
              "them with `flowmonkey topics create` (same prefix and partitions)",
              file=sys.stderr)
        code = EXIT_FAILED
    if problems:
        print("error: " + problems_message(problems, log.bootstrap_servers, topics.prefix,
                                           log.security.protocol != "PLAINTEXT"),
              file=sys.stderr)
        code = EXIT_FAILED
    if code == EXIT_OK:
        print(f"all {len(facts)} topics are right, on {settings.describe_log()}")
    return code


async def _fix(settings: Settings, *, dry_run: bool) -> int:
    from flowmonkey.errors import LogError
    from flowmonkey.log.topics import Topics
    from flowmonkey.processors.topic_checks import topic_problems

    log = _kafka_log(settings)
    topics = Topics(log.topic_prefix)
    try:
        await log.start()
        facts = await log.describe_topics(_names(topics))
        problems = topic_problems(topics, facts)
        changes: dict[str, dict[str, str]] = {}
        for problem in problems:
            changes.setdefault(problem.topic, {}).update(problem.fix)
        for name, wanted in changes.items():
            fact = facts[name]
            if not wanted or fact is None:
                continue
            said = ", ".join(f"{k}={v}" for k, v in wanted.items())
            if dry_run:
                print(f"would set {said} on {name}")
                continue
            await log.alter_topic_configs(fact, wanted)
            print(f"set {said} on {name}")
        after = facts if dry_run else await _settled(log, topics, bool(changes))
    except LogError as exc:
        raise log_unreachable(exc, settings) from None
    finally:
        await log.close()
    left = topic_problems(topics, after)
    missing = [name for name, fact in after.items() if fact is None]
    unfixed = [p for p in left if not (dry_run and p.fix)]  # a dry run would fix those
    for problem in unfixed:
        print(f"error: not fixed: {problem.what}", file=sys.stderr)
    if missing:
        print(f"error: missing: {', '.join(missing)}; create them with `flowmonkey topics "
              "create`", file=sys.stderr)
    if not problems and not missing:
        print(f"nothing to fix, on {settings.describe_log()}")
    return EXIT_FAILED if unfixed or missing else EXIT_OK


async def _partitions(log: Log, spec: TopicSpec) -> int | None:
    """The topic's partition count, or None when it does not exist (embedded log)."""
    from flowmonkey.errors import LogError

    try:
        return await log.partitions_for(spec.name)
    except LogError as exc:
        if exc.details.get("topic") == spec.name:
            return None
        raise


def _warn_counts(commands: str, events: str, configured: int, found: dict[str, int]) -> None:
    for name in (commands, events):
        count = found.get(name, configured)
        if count != configured:
            print(f"warning: {name} has {count} partitions, not the {configured} configured; "
                  "existing topics are never changed (Kafka cannot remove partitions, and "
                  "adding some sends executions' new records to other partitions than "
                  "their history). If the topics hold no records yet (auto-created by the "
                  "broker, say), delete them (kafka-topics.sh --delete --topic NAME) and "
                  "run `flowmonkey topics create` again", file=sys.stderr)


def _check_counts(commands: str, events: str, configured: int,
                  found: dict[str, int]) -> int:
    _warn_counts(commands, events, configured, found)
    counts = {name: found.get(name, configured) for name in (commands, events)}
    if counts[commands] != counts[events]:
        print(f"error: {commands} has {counts[commands]} partitions but {events} has "
              f"{counts[events]}: an execution's commands and events must share a partition "
              "number, so both need the same count", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


CONFIG_SETTLE_S = 15.0
"""How long ``topics fix`` waits for the brokers to show the settings it set: an
altered config reaches every broker's metadata a little later, not at once."""


async def _settled(log: KafkaLog, topics: Topics,
                   changed: bool) -> dict[str, TopicFacts | None]:
    """The topics' facts once the changes made show (or as they are at the deadline,
    when what is left is then reported as not fixed)."""
    from flowmonkey.processors.topic_checks import topic_problems

    loop = asyncio.get_running_loop()
    deadline = loop.time() + CONFIG_SETTLE_S
    while True:
        after = await log.describe_topics(_names(topics))
        if not changed or not [p for p in topic_problems(topics, after) if p.fix] \
                or loop.time() > deadline:
            return after
        await asyncio.sleep(0.2)
