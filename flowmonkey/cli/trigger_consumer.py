"""``flowmonkey trigger-consumer``: run the consumers of topic triggers (a flow started
for each record of an external Kafka topic, exactly once)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from flowmonkey.cli.common import CliError, import_module_or_file
from flowmonkey.cli.options import (
    add_command,
    add_progress_option,
    add_service_options,
    add_settings_options,
)
from flowmonkey.cli.service import (
    apply_gc_option,
    configure_logging,
    run_until_stopped,
    say,
    stop_on_signals,
)
from flowmonkey.cli.settings import log_unreachable, serving_metrics, settings_from_args

if TYPE_CHECKING:
    from flowmonkey.cli.options import Subparsers
    from flowmonkey.log.kafka import KafkaLog
    from flowmonkey.log.topics import Topics
    from flowmonkey.model.trigger import Trigger
    from flowmonkey.processors.topic_triggers import TopicTriggers
    from flowmonkey.settings import Settings

# processors.topic_fires / topic_triggers defaults, repeated so `--help` imports no engine code
DEFAULT_MAX_VALUE_BYTES = 512 * 1024
MAX_VALUE_BYTES = 900 * 1024
DEFAULT_MAX_POLL_RECORDS = 500

EPILOG = """\
For every topic trigger of the --app modules (their `triggers` attribute; --trigger
picks some), a consumer in the trigger's group (its topic.group, default
<prefix>-trigger-<id>) reads the external topic (read_committed, from the earliest
record for a new group). For each batch it sends one trigger.fire command per record
and commits the consumed offsets in ONE Kafka transaction, so every record fires its
trigger once, across crashes and restarts; each record's execution id is derived from
its topic, partition and offset. A value that is not JSON, is larger than
--max-value-bytes or cannot be stored goes to the dead-letter topic (<prefix>.dead-letter)
with the reason in its fm-error header, in the same transaction.

Start as many consumers as you like: the group shares the topic's partitions among
them. On start the consumer sends trigger.register for its triggers (ignored when the
processors know the same definition), so a record never reaches a processor before
its trigger does. The processors decide the trigger.fire commands: run them with the
same --app.

examples:
  export FLOWMONKEY_KAFKA_BOOTSTRAP=localhost:9092
  flowmonkey trigger-consumer --app myapp.triggers
  flowmonkey trigger-consumer --app ./app.py --trigger orders-in --progress-every 30

exit codes: 0 stopped by SIGINT/SIGTERM, 1 Kafka could not be used or consuming
            failed, 2 bad input (no Kafka, no topic triggers, a bad option)
"""


def register_trigger_consumer(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers, "trigger-consumer",
        help="run topic triggers (a flow per record of a Kafka topic)",
        description="Consume the external topics of topic triggers and fire them, once "
                    "per record, until SIGINT or SIGTERM.",
        epilog=EPILOG)
    parser.add_argument("--app", metavar="MODULE[:ATTR]", action="append", default=[],
                        help="an object or module with `triggers` (a .py path works "
                             "too); repeatable")
    parser.add_argument("--trigger", metavar="ID", action="append", default=[],
                        help="consume only this topic trigger; repeatable (default: "
                             "every topic trigger of --app)")
    parser.add_argument("--max-value-bytes", metavar="N", type=int,
                        default=DEFAULT_MAX_VALUE_BYTES,
                        help="larger record values go to the dead-letter topic (default "
                             f"{DEFAULT_MAX_VALUE_BYTES}, at most {MAX_VALUE_BYTES})")
    parser.add_argument("--max-poll-records", metavar="N", type=int,
                        default=DEFAULT_MAX_POLL_RECORDS,
                        help="most records of one partition per transaction (default "
                             f"{DEFAULT_MAX_POLL_RECORDS})")
    add_progress_option(parser)
    add_service_options(parser)
    add_settings_options(parser, partitions=False, postgres=False, data_dir=False,
                         embedded=False, creates_topics=False)
    parser.set_defaults(func=run_trigger_consumer)


def run_trigger_consumer(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if settings.log_kind != "kafka":
        raise CliError("topic triggers consume Kafka topics: set FLOWMONKEY_KAFKA_BOOTSTRAP "
                       "or pass --kafka-bootstrap")
    if args.progress_every <= 0:
        raise CliError(f"--progress-every must be more than 0 seconds, not {args.progress_every}")
    if not 1 <= args.max_value_bytes <= MAX_VALUE_BYTES:
        raise CliError(f"--max-value-bytes must be from 1 to {MAX_VALUE_BYTES}, not "
                       f"{args.max_value_bytes}")
    if not 1 <= args.max_poll_records <= 10_000:
        raise CliError(f"--max-poll-records must be from 1 to 10000, not "
                       f"{args.max_poll_records}")
    triggers = chosen(app_triggers(args.app), args.trigger)
    configure_logging(args, settings)
    return asyncio.run(_Consumer(args, settings, triggers).run())


def app_triggers(specs: Sequence[str], *, required: bool = True) -> list[Trigger]:
    """The ``triggers`` of each ``--app`` (an object or module); every invalid one is
    named with its problems. ``required``: an app without ``triggers`` is an error."""
    from pydantic import ValidationError

    from flowmonkey.kernel.trigger_checks import trigger_problems
    from flowmonkey.model.flow import json_path
    from flowmonkey.model.trigger import Trigger

    if not specs and required:
        raise CliError("give the triggers with --app MODULE (a module or object with "
                       "`triggers`)")
    found: list[Trigger] = []
    problems: list[str] = []
    for spec in specs:
        module, attr = import_module_or_file(spec)
        source: Any = module
        for part in (attr.split(".") if attr else []):
            source = getattr(source, part, None)
        raw = getattr(source, "triggers", None)
        if raw is None:
            if not required:
                continue
            raise CliError(f"{spec}: defines no `triggers`")
        for item in raw if isinstance(raw, list | tuple) else [raw]:
            try:
                model = item if isinstance(item, Trigger) else Trigger.model_validate(item)
            except ValidationError as exc:
                name = item.get("id") if isinstance(item, dict) else None
                problems += [f"trigger {name!r}: {json_path(e['loc']) or '(trigger)'}: "
                             f"{e['msg']}" for e in exc.errors()]
                continue
            more = trigger_problems(model)
            problems += [f"trigger {model.id!r}: {where}: {what}" for where, what in more]
            found.append(model)
    if problems:
        raise CliError("invalid triggers:\n  " + "\n  ".join(problems))
    return found


def chosen(triggers: Sequence[Trigger], ids: Sequence[str]) -> list[Trigger]:
    """The topic triggers among ``triggers`` (only those of ``ids`` when given)."""
    by_id = {t.id: t for t in triggers}
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        raise CliError(f"no trigger {', '.join(map(repr, unknown))} in --app (it has "
                       f"{', '.join(sorted(by_id)) or 'none'})")
    wrong = [i for i in ids if by_id[i].kind != "topic"]
    if wrong:
        named = ", ".join(f"{i!r} ({by_id[i].kind})" for i in wrong)
        raise CliError(f"not topic triggers: {named}")
    picked = [by_id[i] for i in dict.fromkeys(ids)] if ids else \
        [t for t in triggers if t.kind == "topic"]
    if not picked:
        raise CliError("no topic triggers to consume in --app",
                       hint="a topic trigger has kind: topic and topic: {topic: NAME}")
    return picked


def _say(text: str) -> None:
    say("trigger-consumer", text)


class _Consumer:
    def __init__(self, args: argparse.Namespace, settings: Settings,
                 triggers: list[Trigger]) -> None:
        self.args = args
        self.settings = settings
        self.triggers = triggers
        self.stop = asyncio.Event()

    async def run(self) -> int:
        with serving_metrics(self.args, self.settings, _say):
            return await self._run()

    async def _run(self) -> int:
        from flowmonkey.errors import LogError
        from flowmonkey.log.kafka import require_kafka
        from flowmonkey.log.topics import Topics
        from flowmonkey.metrics import default_metrics
        from flowmonkey.processors.topic_triggers import TopicTriggers

        settings = self.settings
        log = require_kafka(settings.make_log(client_id="flowmonkey-trigger-consumer"),
                            "the trigger consumer")
        topics = Topics(log.topic_prefix)
        service = TopicTriggers(log, topics, self.triggers,
                                max_value_bytes=self.args.max_value_bytes,
                                max_poll_records=self.args.max_poll_records,
                                metrics=default_metrics() if settings.metrics_port else None)
        _say(f"{len(self.triggers)} topic triggers on {settings.describe_log()}: " +
             ", ".join(f"{c.trigger.id} <- {c.topic} (group {c.group})"
                       for c in service.consumers))
        try:
            await log.start()
            await register(log, topics, self.triggers)
            await service.start()
        except LogError as exc:
            await log.close()
            raise log_unreachable(exc, settings) from None
        try:
            apply_gc_option(self.args)
            return await self._serve(service)
        finally:
            _say("stopping (finishing the batches in progress)...")
            await service.stop()
            await log.close()
            _say(f"stopped; {_totals(service)}")

    async def _serve(self, service: TopicTriggers) -> int:
        stop_on_signals(self.stop)
        commands = service.consumers[0].topics.commands
        _say(f"consuming; firing into {commands}; Ctrl-C to stop")

        def failure() -> str | None:
            found = service.failure()
            if found is None:
                return None
            trigger, error = found
            return f"trigger {trigger.id}: consuming stopped: {type(error).__name__}: {error}"

        return await run_until_stopped(
            self.stop, self.args.progress_every, failure=failure,
            every_interval=lambda _span: _say(_progress_line(service)))


async def register(log: KafkaLog, topics: Topics, triggers: Sequence[Trigger]) -> None:
    """Publish ``trigger.register`` for each trigger before consuming: its commands
    partition then holds the definition before any of its fires (a processor ignores
    a definition it already has)."""
    import time

    from flowmonkey.runtime.trigger_calls import register_commands

    await log.publish(register_commands(topics.commands, triggers, int(time.time() * 1000),
                                        "trigger-consumer"))


def _totals(service: TopicTriggers) -> str:
    fired = sum(c.fired for c in service.consumers)
    dead = sum(c.dead_lettered for c in service.consumers)
    return f"{fired} records fired their trigger, {dead} dead-lettered"


def _progress_line(service: TopicTriggers) -> str:
    parts = []
    for c in service.consumers:
        owned = ",".join(str(p) for p in sorted(c.owned)) or "none yet"
        parts.append(f"{c.trigger.id}: partitions {owned} of {c.topic}, {c.fired} fired, "
                     f"{c.dead_lettered} dead-lettered, {c.batches} batches")
    return "; ".join(parts)
