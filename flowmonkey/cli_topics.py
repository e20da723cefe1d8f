"""``flowmonkey topics create``: create FlowMonkey's topics (idempotent)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

from flowmonkey.cli_common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, CliError, add_command
from flowmonkey.cli_settings import add_settings_options, log_unreachable, settings_from_args

if TYPE_CHECKING:
    from flowmonkey.cli_common import Subparsers
    from flowmonkey.log.base import Log, TopicSpec
    from flowmonkey.settings import Settings

EPILOG = """\
Creates PREFIX.commands and PREFIX.events with the configured partitions,
PREFIX.flows (compacted, one partition) and PREFIX.dead-letter (one partition).
Topics that exist are left as they are and reported as found, so this is safe to run
on every deploy. Kafka cannot shrink a topic: choose the partition count with room
to grow (it bounds how many processor and projector instances can share the work).

examples:
  flowmonkey topics create --kafka-bootstrap localhost:9092 --partitions 24
  FLOWMONKEY_KAFKA_BOOTSTRAP=kafka:9092 FLOWMONKEY_TOPIC_PREFIX=shop flowmonkey topics create
  flowmonkey topics create --data-dir ./state          # the durable embedded log

exit codes: 0 created or found, 1 the log could not be used or the commands and
            events topics differ in partitions, 2 bad input
"""


def register_topics(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers, "topics", help="manage FlowMonkey's topics",
        description="Manage the topics FlowMonkey uses (`topics create`).",
        epilog="examples:\n  flowmonkey topics create --kafka-bootstrap localhost:9092\n"
               "  flowmonkey topics create --help")
    actions = parser.add_subparsers(dest="topics_action", metavar="ACTION")
    create = add_command(
        actions, "create", help="create the commands, events, flows and dead-letter topics",
        description="Create the commands, events, flows (compacted) and dead-letter "
                    "topics on Kafka or the durable embedded log; existing ones are kept.",
        epilog=EPILOG)
    add_settings_options(create, postgres=False)
    create.set_defaults(func=run_create)

    def no_action(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        print("error: no action given; choose create (above)", file=sys.stderr)
        return EXIT_BAD_INPUT

    parser.set_defaults(func=no_action)


def run_create(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if settings.log_kind == "memory":
        raise CliError(
            "no log to create topics in: set FLOWMONKEY_KAFKA_BOOTSTRAP or pass "
            "--kafka-bootstrap (or FLOWMONKEY_DATA_DIR / --data-dir for the durable "
            "embedded log)",
            hint="e.g. flowmonkey topics create --kafka-bootstrap localhost:9092")
    return asyncio.run(_create(settings))


async def _create(settings: Settings) -> int:
    from flowmonkey.errors import LogError
    from flowmonkey.processors.topics import Topics

    topics = Topics(settings.topic_prefix)
    specs = topics.specs(settings.partitions)
    log = settings.make_log(client_id="flowmonkey-topics")
    try:
        await log.start()
        found = {spec.name: await _partitions(log, spec) for spec in specs}
        missing = [spec for spec in specs if found[spec.name] is None]
        await log.create_topics(missing)
    except LogError as exc:
        raise log_unreachable(exc, settings) from None
    finally:
        await log.close()
    for spec in specs:
        count = found[spec.name]
        what = "found  " if count is not None else "created"
        partitions = count if count is not None else spec.partitions
        detail = f"{partitions} partition{'s' if partitions != 1 else ''}"
        if spec.compacted:
            detail += ", compacted"
        print(f"{what} {spec.name}  ({detail})")
    created = len(missing)
    print(f"{created} created, {len(specs) - created} found, on {settings.describe_log()}")
    return _check_counts(topics.commands, topics.events, settings.partitions, found)


async def _partitions(log: Log, spec: TopicSpec) -> int | None:
    """The topic's partition count, or None when it does not exist."""
    from flowmonkey.errors import LogError

    try:
        return await log.partitions_for(spec.name)
    except LogError as exc:
        if exc.details.get("topic") == spec.name:
            return None
        raise


def _check_counts(commands: str, events: str, configured: int,
                  found: dict[str, int | None]) -> int:
    counts = {name: found[name] or configured for name in (commands, events)}
    for name, count in counts.items():
        if count != configured:
            print(f"warning: {name} has {count} partitions, not the {configured} configured; "
                  "existing topics are never changed (add partitions with Kafka's "
                  "kafka-topics.sh --alter, never remove)", file=sys.stderr)
    if counts[commands] != counts[events]:
        print(f"error: {commands} has {counts[commands]} partitions but {events} has "
              f"{counts[events]}: an execution's commands and events must share a partition "
              "number, so both need the same count", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
