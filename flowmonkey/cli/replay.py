"""``flowmonkey replay``: executions rebuilt from the log, for audit (FEATURES F7).

The logic is in :mod:`flowmonkey.projections.audit`; this module parses, prints and
picks the exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from flowmonkey.cli.common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, CliError
from flowmonkey.cli.options import (
    add_command,
    add_progress_option,
    add_schema_option,
    add_settings_options,
)
from flowmonkey.cli.settings import (
    check_schema,
    connect_postgres,
    log_unreachable,
    require_dsn,
    settings_from_args,
)

if TYPE_CHECKING:
    import asyncpg

    from flowmonkey.cli.options import Subparsers
    from flowmonkey.kernel.state import ExecutionState
    from flowmonkey.log.base import Log
    from flowmonkey.projections.audit import History, ProjectionRows, Verdict, VerifyReport
    from flowmonkey.settings import Settings

EPILOG = """\
The events topic is the truth: an execution's state is rebuilt by folding its events
from the log with the kernel's appliers, exactly as the processors and projectors do.
On the durable embedded log (FLOWMONKEY_DATA_DIR) only one process can open the log:
stop the engine first.

examples:
  export FLOWMONKEY_KAFKA_BOOTSTRAP=localhost:9092
  flowmonkey replay 3f2c…                      # its current state, as JSON
  flowmonkey replay 3f2c… --at 4 --format text # as it was right after event 4
  flowmonkey replay 3f2c… --export history.jsonl
  export FLOWMONKEY_POSTGRES_DSN=postgresql://flowmonkey:secret@localhost:5432/flowmonkey
  flowmonkey replay 3f2c… --verify             # the projection against the log
  flowmonkey replay --verify-all --limit 10000

exit codes: 0 done (with --verify: equal), 1 the projection differs from the log or
            lacks an execution, or a service could not be used,
            2 bad input (the execution is not in the log, a bad option)
"""


def register_replay(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers, "replay", help="replay executions from the log (audit)",
        description="Rebuild an execution's state from the events log (at any event), "
                    "compare the Postgres projection with the log, or export an "
                    "execution's history.",
        epilog=EPILOG)
    parser.add_argument("execution_id", metavar="EXECUTION_ID", nargs="?",
                        help="the execution (not with --verify-all)")
    parser.add_argument("--at", metavar="SEQ", type=int,
                        help="the state right after event SEQ (1 = created); with "
                             "--export, the history up to it")
    parser.add_argument("--format", choices=("json", "text"), default="json",
                        help="json (default) or a readable summary")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--verify", action="store_true",
                      help="compare the projection's execution (FLOWMONKEY_POSTGRES_DSN, "
                           "--schema) with the replayed state; print the differing fields")
    mode.add_argument("--verify-all", action="store_true",
                      help="compare every execution in the log with the projection "
                           "(reads each events partition once)")
    mode.add_argument("--export", metavar="FILE",
                      help="write the execution's history as JSON lines, one event per "
                           "line, in seq order ('-' for stdout)")
    parser.add_argument("--limit", metavar="N", type=int,
                        help="with --verify-all: compare at most N executions")
    add_progress_option(parser, where="on stderr", when="with --verify-all")
    add_schema_option(parser)
    add_settings_options(parser, partitions=False, creates_topics=False)
    parser.set_defaults(func=run_replay)


def _check_args(args: argparse.Namespace) -> None:
    if args.verify_all:
        if args.execution_id is not None:
            raise CliError("--verify-all compares every execution: give no EXECUTION_ID")
        if args.at is not None:
            raise CliError("--at cannot be used with --verify-all")
        if args.limit is not None and args.limit < 1:
            raise CliError(f"--limit must be at least 1, not {args.limit}")
        if args.progress_every <= 0:
            raise CliError(f"--progress-every must be more than 0 seconds, not "
                           f"{args.progress_every}")
        return
    if args.execution_id is None or not args.execution_id.strip():
        raise CliError("give the EXECUTION_ID to replay (or --verify-all)")
    if args.limit is not None:
        raise CliError("--limit goes with --verify-all")
    if args.at is not None and args.at < 1:
        raise CliError(f"--at must be an event seq of 1 or more, not {args.at}")
    if args.at is not None and args.verify:
        raise CliError("--verify compares the latest state (the projection holds only "
                       "that): leave out --at")


def run_replay(args: argparse.Namespace) -> int:
    _check_args(args)
    settings = settings_from_args(args)
    if settings.log_kind == "memory":
        raise CliError(
            "no log to replay from: set FLOWMONKEY_KAFKA_BOOTSTRAP or pass "
            "--kafka-bootstrap (or FLOWMONKEY_DATA_DIR / --data-dir for the durable "
            "embedded log)")
    dsn: str | None = None
    if args.verify or args.verify_all:
        dsn = require_dsn(settings)
        check_schema(args.schema)
    return asyncio.run(_run(args, settings, dsn))


@contextlib.asynccontextmanager
async def open_log(settings: Settings, client_id: str) -> AsyncIterator[tuple[Log, str]]:
    """The started log and its events topic; a log that cannot be used, or a missing
    events topic, is a :class:`CliError` that says what to check."""
    from flowmonkey.errors import LogError
    from flowmonkey.log.topics import Topics

    log = settings.make_log(client_id=client_id)
    topic = Topics(log.topic_prefix).events
    try:
        await log.start()
        await log.partitions_for(topic)
    except LogError as exc:
        with contextlib.suppress(Exception):
            await log.close()
        raise log_unreachable(exc, settings) from None
    try:
        yield log, topic
    finally:
        await log.close()


async def _run(args: argparse.Namespace, settings: Settings, dsn: str | None) -> int:
    from flowmonkey.projections.audit import NotInLogError, read_history

    async with open_log(settings, "flowmonkey-replay") as (log, topic):
        try:
            if args.verify_all:
                assert dsn is not None
                return await _verify_all(args, log, topic, dsn)
            if args.verify:
                assert dsn is not None
                return await _verify_one(args, log, topic, dsn)
            history = await read_history(log, topic, args.execution_id)
        except NotInLogError as exc:
            short = len(args.execution_id) < 16
            raise CliError(str(exc), exit_code=EXIT_BAD_INPUT,
                           hint="give the whole execution id: `dev` and `run` show only "
                                "its first 8 characters in timelines, `dev` prints it whole "
                                "when it starts one, and `run --json` and the API give it whole"
                                if short else
                                "check the id, and that FLOWMONKEY_TOPIC_PREFIX (or "
                                "--topic-prefix) names the engine's topics") from None
    if args.export is not None:
        return _export(args, history)
    return _show(args, history)


def _at(args: argparse.Namespace, history: History) -> int:
    if args.at is None:
        return history.last_seq
    if args.at > history.last_seq:
        raise CliError(f"execution {history.execution_id!r} has {len(history.events)} "
                       f"events (seq 1 to {history.last_seq}); --at {args.at} is past the "
                       "last one")
    return int(args.at)


def _show(args: argparse.Namespace, history: History) -> int:
    from flowmonkey.cli.format import pretty

    seq = _at(args, history)
    state = history.state_at(seq)
    if state is None:
        for prefix, what, hint in (
                ("trigger:", "a trigger", "see it with `flowmonkey triggers list`"),
                ("form:", "a form", "see its submissions with GET /v1/forms/{id}/submissions")):
            if history.execution_id.startswith(prefix):
                raise CliError(f"{history.execution_id!r} is {what}, not an execution: its "
                               f"{len(history.events)} events are its audit trail",
                               exit_code=EXIT_FAILED,
                               hint=f"{hint}, or its events with --export")
        raise CliError(f"execution {history.execution_id!r} has events in the log but no "
                       "execution.created event: nothing to rebuild", exit_code=EXIT_FAILED)
    applied = len(history.upto(seq))
    if args.format == "text":
        for line in _summary(state, applied, len(history.events)):
            print(line)
        return EXIT_OK
    print(pretty({"execution_id": history.execution_id, "at_seq": seq,
                  "events_applied": applied, "events": len(history.events),
                  "partition": history.partition,
                  "execution": state.to_execution().model_dump(mode="json")}))
    return EXIT_OK


def _summary(state: ExecutionState, applied: int, total: int) -> list[str]:
    from flowmonkey.cli.format import error_text, short
    from flowmonkey.events.envelope import ms_to_datetime

    def when(ms: int) -> str:
        return ms_to_datetime(ms).isoformat(timespec="milliseconds")

    execution = state.to_execution()
    lines = [
        f"execution {execution.id}",
        f"  flow      {execution.flow_id}@{execution.flow_version}"
        + (f"  tenant {execution.tenant_id}" if execution.tenant_id else ""),
        f"  status    {execution.status.value}"
        + (f" at step {execution.current_step_id}"
           if execution.current_step_id and not execution.is_terminal else ""),
        f"  at seq    {state.seq} ({applied} of {total} events)",
        f"  created   {when(state.created_at)}   updated {when(state.updated_at)}",
        f"  steps     {execution.step_count}",
    ]
    if execution.wait_reason:
        lines.append(f"  waiting   {execution.wait_reason}")
    if execution.error is not None:
        lines.append(f"  error     {error_text(execution)}")
    if execution.parent_execution_id:
        lines.append(f"  parent    {execution.parent_execution_id}")
    lines.append(f"  context   {short(execution.context, 200)}")
    return lines


def _export(args: argparse.Namespace, history: History) -> int:
    from flowmonkey.projections.audit import write_jsonl

    events = history.upto(_at(args, history) if args.at is not None else None)
    if args.export == "-":
        write_jsonl(events, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return EXIT_OK
    path = Path(args.export)
    with path.open("wb") as out:
        written = write_jsonl(events, out)
    print(f"exported {written} events of {history.execution_id} to {path}", file=sys.stderr)
    return EXIT_OK


async def _verify_one(args: argparse.Namespace, log: Log, topic: str, dsn: str) -> int:
    from flowmonkey.projections.audit import verify_execution

    conn = await connect_postgres(dsn)
    try:
        rows = await _rows(conn, args.schema)
        verdict, history = await verify_execution(rows, log, topic, args.execution_id)
    finally:
        await conn.close()
    if args.format == "json":
        from flowmonkey.cli.format import pretty

        print(pretty({**verdict.to_json(), "events": len(history.events),
                      "schema": args.schema}))
    else:
        for line in _verdict_lines(verdict, args.schema):
            print(line)
    return EXIT_OK if verdict.kind == "equal" else EXIT_FAILED


async def _rows(conn: asyncpg.Connection[asyncpg.Record], schema: str) -> ProjectionRows:
    from flowmonkey.errors import FlowMonkeyError
    from flowmonkey.projections.audit import ProjectionRows

    rows = ProjectionRows(conn, schema)
    try:
        await rows.check()
    except FlowMonkeyError as exc:
        raise CliError(str(exc), exit_code=EXIT_BAD_INPUT,
                       hint="run `flowmonkey migrate` and a projector, or name the schema "
                            "the projector writes (--schema)") from None
    return rows


def _verdict_lines(verdict: Verdict, schema: str) -> list[str]:
    from flowmonkey.cli.format import short

    eid = verdict.execution_id
    if verdict.kind == "equal":
        return [f"equal: {eid} in schema \"{schema}\" matches the log (seq {verdict.log_seq})"]
    if verdict.kind == "missing":
        return [f"missing: {eid} is in the log (seq {verdict.log_seq}) but not in the "
                f"projection (schema \"{schema}\")"]
    lines = [f"different: {eid} in schema \"{schema}\" (projection seq "
             f"{verdict.projection_seq}, log seq {verdict.log_seq}):"]
    if verdict.behind:
        lines.append("  the projection has not applied the latest events yet (is the "
                     "projector running and caught up?)")
    for d in verdict.differences:
        lines.append(f"  {d.field}: projection {short(d.projection, 120)} != "
                     f"log {short(d.log, 120)}")
    return lines


async def _verify_all(args: argparse.Namespace, log: Log, topic: str, dsn: str) -> int:
    from flowmonkey.projections.audit import Throttle, verify_all

    def progress(report: VerifyReport) -> None:
        print(f"verify: partition {min(report.partitions_done + 1, report.partitions)}/"
              f"{report.partitions}, {report.events_read} events read, "
              f"{report.checked} executions checked ({report.equal} equal, "
              f"{report.different} different, {report.missing} missing)",
              file=sys.stderr, flush=True)

    conn = await connect_postgres(dsn)
    try:
        rows = await _rows(conn, args.schema)
        report = await verify_all(rows, log, topic, limit=args.limit,
                                  on_progress=Throttle(args.progress_every, progress))
    finally:
        await conn.close()
    _print_report(report, args.schema, args.format, sys.stdout)
    return EXIT_OK if report.ok else EXIT_FAILED


def _print_report(report: VerifyReport, schema: str, fmt: str, out: IO[str]) -> None:
    if fmt == "json":
        from flowmonkey.cli.format import pretty

        print(pretty({**report.to_json(), "schema": schema}), file=out)
        return
    for verdict in report.problems:
        for line in _verdict_lines(verdict, schema):
            print(line, file=out)
    shown = len(report.problems)
    if shown < report.different + report.missing:
        print(f"(the first {shown} problems are shown)", file=out)
    print(f"checked {report.checked} executions against schema \"{schema}\": "
          f"{report.equal} equal, {report.different} different, {report.missing} missing"
          + (f" ({report.behind} of the different ones are behind the log)"
             if report.behind else ""), file=out)
    notes = []
    if report.orphans:
        notes.append(f"{report.orphans} executions without an execution.created event "
                     "were not compared")
    if report.skipped_records:
        notes.append(f"{report.skipped_records} undecodable records were skipped")
    for note in notes:
        print(note, file=out)
