"""``flowmonkey triggers``: list triggers (from the projection), pause and resume them
(commands sent to the log), and a schedule's next fire times (computed from its
definition, here).

``list`` reads like ``jobs list``: PostgreSQL's ``fm_triggers``, or the projection an
engine on the durable embedded log (``--data-dir``) holds, rebuilt from the log (stop
that engine first: one process opens the log). ``pause``/``resume`` append
``trigger.disable``/``trigger.enable`` to the commands topic (Kafka, or the embedded
log in ``--data-dir``, where the engine decides them when it next runs). ``next``
reads the definition from ``--app``/``--flows-dir``/``--file`` when given, else from
the projection.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from flowmonkey.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    Bundle,
    CliError,
    load_apps,
    load_flow_source,
)
from flowmonkey.cli.options import (
    add_actions,
    add_app_options,
    add_command,
    add_schema_option,
    add_settings_options,
)
from flowmonkey.cli.settings import (
    DSN_EXAMPLE,
    check_schema,
    postgres_unreachable,
    require_dsn,
    settings_from_args,
)

if TYPE_CHECKING:
    from flowmonkey.cli.options import Subparsers
    from flowmonkey.model.trigger import Trigger
    from flowmonkey.model.trigger_record import TriggerRecord
    from flowmonkey.projections.base import Projection
    from flowmonkey.settings import Settings

KINDS = ("webhook", "schedule", "event", "topic")

EPILOG = """\
A trigger starts a flow without code: a signed webhook (POST /v1/hooks/ID on
`flowmonkey api`), a cron schedule, another flow's event, or a record on a Kafka
topic. Triggers are defined in flow files (a `triggers:` section), files of their own
(top level `triggers:`) or an --app module's `triggers`, and registered by the engine
that is given them.

examples:
  export FLOWMONKEY_POSTGRES_DSN=postgresql://flowmonkey:secret@localhost:5432/flowmonkey
  flowmonkey triggers list
  flowmonkey triggers list --kind schedule --json
  FLOWMONKEY_KAFKA_BOOTSTRAP=localhost:9092 flowmonkey triggers pause nightly \\
      --reason "maintenance"
  flowmonkey triggers resume nightly --data-dir ./state
  flowmonkey triggers next nightly --file flows/report.yaml --count 10
  flowmonkey triggers list --data-dir ./state      # the embedded log (engine stopped)

exit codes: 0 done, 1 the database or log could not be used, or no such trigger,
            2 bad input
"""

NO_SOURCE = ("no triggers to read: set FLOWMONKEY_POSTGRES_DSN or pass --postgres-dsn "
             "(the PostgreSQL projection), or pass --data-dir DIR (the durable embedded log)")


def register_triggers(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers, "triggers", help="list, pause, resume triggers; a schedule's next times",
        description="Triggers: list them from the projection, pause or resume one (a "
                    "command on the log), print a schedule's next fire times.",
        epilog=EPILOG)
    actions = add_actions(parser, "triggers_action", "list, pause, resume or next")
    listing = add_command(actions, "list", help="list triggers by id",
                          description="List the registered triggers, by id.", epilog=EPILOG)
    listing.add_argument("--kind", choices=KINDS, help="only triggers of this kind")
    listing.add_argument("--flow", metavar="FLOW_ID", help="only triggers starting this flow")
    state = listing.add_mutually_exclusive_group()
    state.add_argument("--enabled", dest="enabled", action="store_const", const=True,
                       help="only enabled triggers")
    state.add_argument("--disabled", dest="enabled", action="store_const", const=False,
                       help="only paused triggers")
    listing.add_argument("--limit", type=_page_size, default=100,
                         help="at most this many (1 to 1000, default 100)")
    listing.add_argument("--cursor", metavar="CURSOR",
                         help="the next page: the cursor printed under a full page")
    listing.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_schema_option(listing)
    add_settings_options(listing, kafka=False, partitions=False)
    listing.set_defaults(func=_read_command(_list))

    for name, verb in (("pause", "disable"), ("resume", "enable")):
        change = add_command(
            actions, name, help=f"{name} a trigger (trigger.{verb} on the log)",
            description=f"Send trigger.{verb} for a trigger to the commands topic; the "
                        "processors decide it (an unknown trigger is refused there).",
            epilog=EPILOG)
        change.add_argument("trigger_id", metavar="TRIGGER_ID")
        change.add_argument("--reason", help="why (kept in the trigger's audit trail)")
        change.add_argument("--by", default="cli", help="who (default: cli)")
        add_settings_options(change, postgres=False, creates_topics=False)
        change.set_defaults(func=_change_command(verb))

    following = add_command(
        actions, "next", help="a schedule's next fire times",
        description="Print a schedule's next fire times, computed from its definition "
                    "(from --app/--flows-dir/--file, else from the projection).",
        epilog=EPILOG)
    following.add_argument("trigger_id", metavar="TRIGGER_ID")
    following.add_argument("--count", type=_count, default=5,
                           help="how many (1 to 1000, default 5)")
    following.add_argument("--file", action="append", default=[], metavar="FILE",
                           help="a flow or trigger file holding the definition; repeatable")
    following.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_app_options(following)
    add_schema_option(following)
    add_settings_options(following, kafka=False, partitions=False)
    following.set_defaults(func=_next)


def _bounded(text: str, top: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= top:
        raise argparse.ArgumentTypeError(f"must be 1 to {top}, not {value}")
    return value


def _page_size(text: str) -> int:
    return _bounded(text, 1000)


def _count(text: str) -> int:
    return _bounded(text, 1000)


# --------------------------------------------------------------------------- reading

Action = Callable[["Projection", argparse.Namespace], Awaitable[int]]


def _read_command(action: Action) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        return asyncio.run(_with_projection(args, action))
    return run


async def _with_projection(args: argparse.Namespace, action: Action) -> int:
    settings = settings_from_args(args)
    if args.data_dir is not None and args.postgres_dsn is not None:
        raise CliError("give --data-dir (the embedded log) or --postgres-dsn (the "
                       "PostgreSQL projection), not both")
    if args.data_dir is not None or (settings.data_dir is not None
                                     and not settings.postgres_dsn):
        return await _embedded(settings, args, action)
    if not settings.postgres_dsn:
        raise CliError(NO_SOURCE, hint=f"e.g. export FLOWMONKEY_POSTGRES_DSN={DSN_EXAMPLE}, "
                                       "or --data-dir ./state")
    return await _postgres(require_dsn(settings), args, action)


async def _embedded(settings: Settings, args: argparse.Namespace, action: Action) -> int:
    from pathlib import Path

    from flowmonkey.cli.read_models import project_log
    from flowmonkey.projections.memory import MemoryProjection

    assert settings.data_dir is not None
    if not Path(settings.data_dir).is_dir():  # noqa: ASYNC240 - one stat, before any I/O
        raise CliError(f"data directory not found: {settings.data_dir}",
                       hint="give the --data-dir (or FLOWMONKEY_DATA_DIR) the engine uses")
    projection = MemoryProjection()
    await projection.start()
    try:
        await project_log(settings, projection, "flowmonkey-triggers")
        return await action(projection, args)
    finally:
        await projection.close()


async def _postgres(dsn: str, args: argparse.Namespace, action: Action) -> int:
    import asyncpg

    from flowmonkey.cli.read_models import require_table
    from flowmonkey.projections.postgres import PostgresProjection

    check_schema(args.schema)
    await require_table(dsn, args.schema, "fm_triggers")
    projection = PostgresProjection(dsn, args.schema, pool_min=1, pool_max=1)
    try:
        await projection.start()
        return await action(projection, args)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise postgres_unreachable(exc, dsn) from None
    finally:
        await projection.close()


async def _list(projection: Projection, args: argparse.Namespace) -> int:
    from flowmonkey.projections.rows import InvalidCursorError

    try:
        page = await projection.list_triggers(kind=args.kind, flow_id=args.flow,
                                              enabled=args.enabled, limit=args.limit,
                                              cursor=args.cursor)
    except InvalidCursorError as exc:
        raise CliError(str(exc), hint="pass the --cursor a previous page printed, "
                                      "unchanged") from None
    if args.json:
        print(json.dumps({"items": [_json(t) for t in page.items],
                          "nextCursor": page.next_cursor}, indent=2))
        return EXIT_OK
    if not page.items:
        filtered = any(v is not None for v in (args.kind, args.flow, args.enabled,
                                               args.cursor))
        print("no triggers" + (" match" if filtered else ""))
        return EXIT_OK
    for record in page.items:
        print(_line(record))
    print(f"{len(page.items)} trigger{'' if len(page.items) == 1 else 's'}")
    if page.next_cursor is not None:
        print(f"more: --cursor {page.next_cursor}")
    return EXIT_OK


def _when(moment: Any) -> str:
    from flowmonkey.api.times import iso_utc

    return iso_utc(moment) if moment is not None else "-"


def _line(record: TriggerRecord) -> str:
    state = "enabled " if record.enabled else "disabled"
    tenant = f"  tenant {record.tenant_id}" if record.tenant_id else ""
    following = f"  next {_when(record.next_fire_at)}" if record.next_fire_at else ""
    return (f"{record.id}  {record.kind:<8}  {state}  -> {record.flow_id}{tenant}  fired "
            f"{record.fired}  failed {record.failed}  skipped {record.skipped}  last "
            f"{_when(record.last_fired_at)}{following}")


def _json(record: TriggerRecord) -> dict[str, Any]:
    """The trigger as the HTTP API answers it: camelCase keys, ISO-8601 UTC times."""
    from flowmonkey.api.schemas import TriggerOut

    dumped: dict[str, Any] = TriggerOut.of(record).model_dump(mode="json", by_alias=True)
    return dumped


# --------------------------------------------------------------------------- pause, resume


def _change_command(verb: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        settings = settings_from_args(args)
        if settings.log_kind == "memory":
            raise CliError("no log to send the command to: set FLOWMONKEY_KAFKA_BOOTSTRAP "
                           "(or --kafka-bootstrap), or pass --data-dir DIR (the durable "
                           "embedded log)")
        return asyncio.run(_send_change(settings, verb, args))
    return run


async def _send_change(settings: Settings, verb: str, args: argparse.Namespace) -> int:
    import uuid

    from flowmonkey.cli.replay import open_log
    from flowmonkey.events import names as n
    from flowmonkey.events.envelope import Command
    from flowmonkey.log.topics import Topics
    from flowmonkey.model.trigger import TRIGGER_ID_PATTERN, entity_id
    from flowmonkey.runtime.commands import command_record

    if not re.fullmatch(TRIGGER_ID_PATTERN, args.trigger_id):
        raise CliError(f"{args.trigger_id!r} is not a trigger id (letters, digits and "
                       "'._-', at most 100)")
    kind = n.CMD_TRIGGER_DISABLE if verb == "disable" else n.CMD_TRIGGER_ENABLE
    key = entity_id(args.trigger_id)
    data: dict[str, Any] = {"by": args.by}
    if args.reason:
        data["reason"] = args.reason
    command = Command(type=kind, command_id=uuid.uuid4().hex, execution_id=key,
                      timestamp_ms=time.time_ns() // 1_000_000, tenant_id=None, data=data)
    async with open_log(settings, "flowmonkey-triggers") as (log, _events):
        await log.append([command_record(Topics(log.topic_prefix).commands, command, key)])
    print(f"sent {kind} for trigger {args.trigger_id} to {settings.describe_log()} "
          f"(command {command.command_id}); the processors decide it")
    return EXIT_OK


# --------------------------------------------------------------------------- next


def _next(args: argparse.Namespace) -> int:
    from flowmonkey.runtime.trigger_defs import next_fire_times

    trigger, enabled = _definition(args)
    if trigger.schedule is None:
        raise CliError(f"trigger {trigger.id!r} is a {trigger.kind} trigger: only "
                       "schedules have fire times")
    from flowmonkey.api.times import iso_utc_ms

    times = next_fire_times(trigger, time.time_ns() // 1_000_000, args.count)
    if args.json:
        print(json.dumps({"triggerId": trigger.id, "enabled": enabled,
                          "timezone": trigger.schedule.timezone,
                          "times": [iso_utc_ms(t) for t in times]}, indent=2))
        return EXIT_OK
    note = "" if enabled is not False else " (paused: it fires these once resumed)"
    print(f"{trigger.id}: {trigger.schedule.cron} in {trigger.schedule.timezone}{note}")
    for at in times:
        print(f"  {iso_utc_ms(at)}  {_local(at, trigger.schedule.timezone)}")
    return EXIT_OK


def _local(ms: int, timezone: str) -> str:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.fromtimestamp(ms / 1000, ZoneInfo(timezone)).isoformat()


def _definition(args: argparse.Namespace) -> tuple[Trigger, bool | None]:
    """The trigger's definition and (from the projection) whether it is enabled."""
    if args.app or args.flows_dir or args.file:
        bundle = load_apps(args.app, args.flows_dir)
        for spec in args.file:
            bundle.extend(load_flow_source(spec))
        return _find(bundle, args.trigger_id), None

    async def read(projection: Projection, _: argparse.Namespace) -> int:
        found.append(await projection.get_trigger(args.trigger_id))
        return EXIT_OK

    found: list[TriggerRecord | None] = []
    asyncio.run(_with_projection(args, read))
    record = found[0] if found else None
    if record is None:
        raise CliError(f"trigger {args.trigger_id!r} not found", exit_code=EXIT_FAILED,
                       hint="list them with `flowmonkey triggers list`, or give its file "
                            "with --file")
    return record.trigger(), record.enabled


def _find(bundle: Bundle, trigger_id: str) -> Trigger:
    for trigger in bundle.triggers:
        if trigger.id == trigger_id:
            return trigger
    known = ", ".join(sorted(t.id for t in bundle.triggers)) or "none"
    raise CliError(f"trigger {trigger_id!r} is not defined there (triggers: {known})",
                   exit_code=EXIT_FAILED)
