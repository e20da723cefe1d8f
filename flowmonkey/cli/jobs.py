"""``flowmonkey jobs``: list and show jobs (stateful handlers' step attempts, run by
workers) from the projection.

On PostgreSQL (``--postgres-dsn`` / ``FLOWMONKEY_POSTGRES_DSN``) the jobs are the
table ``fm_jobs``, read as they are. On the durable embedded log (``--data-dir``) the
engine keeps its projection in memory, so these commands rebuild it from the log, as
``wal list --data-dir`` does (stop the engine first: one process opens the log).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from flowmonkey.cli.common import EXIT_FAILED, EXIT_OK, CliError
from flowmonkey.cli.options import (
    add_actions,
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
    from flowmonkey.model.job import JobRecord
    from flowmonkey.projections.base import Projection

JOB_STATUSES = ("pending", "claimed", "completed", "failed", "timed_out", "cancelled")

EPILOG = """\
A job is a stateful handler's step attempt: the execution waits on it while a worker
claims it, heartbeats, reports progress, checkpoints, and completes or fails it. Each
job is kept after it ended, with its output or error. Listings are newest first; a
page that is full ends with the --cursor of the next one.

examples:
  export FLOWMONKEY_POSTGRES_DSN=postgresql://flowmonkey:secret@localhost:5432/flowmonkey
  flowmonkey jobs list
  flowmonkey jobs list --status claimed --worker worker-1
  flowmonkey jobs list --type export --limit 20 --json
  flowmonkey jobs list --execution 3f2c9a…
  flowmonkey jobs show job-1a2b3c…
  flowmonkey jobs list --data-dir ./state      # the embedded log (engine stopped)

exit codes: 0 done, 1 the database or log could not be used, or (show) no such job,
            2 bad input (no DSN or data directory, a bad schema or cursor, no
            FlowMonkey tables in the schema)
"""

NO_SOURCE = ("no jobs to read: set FLOWMONKEY_POSTGRES_DSN or pass --postgres-dsn (the "
             "PostgreSQL projection), or pass --data-dir DIR (the durable embedded log)")


def register_jobs(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers, "jobs", help="list or show jobs (stateful handlers run by workers)",
        description="Read the jobs of the projection: the PostgreSQL one, or the one an "
                    "engine on the embedded log in --data-dir rebuilds from it.",
        epilog=EPILOG)
    actions = add_actions(parser, "jobs_action", "list or show")
    listing = add_command(actions, "list", help="list jobs, newest first",
                          description="List jobs, newest first, filtered.", epilog=EPILOG)
    listing.add_argument("--status", choices=JOB_STATUSES, help="only jobs in this status")
    listing.add_argument("--type", metavar="TYPE", help="only jobs of this handler type")
    listing.add_argument("--execution", metavar="EXECUTION_ID",
                         help="only the jobs of this execution")
    listing.add_argument("--worker", metavar="WORKER_ID",
                         help="only jobs held (or, ended, last held) by this worker")
    listing.add_argument("--limit", type=_page_size, default=50,
                         help="at most this many jobs (1 to 1000, default 50)")
    listing.add_argument("--cursor", metavar="CURSOR",
                         help="the next page: the cursor printed under a full page")
    showing = add_command(actions, "show", help="show one job in full",
                          description="Show one job: its status, claims, progress, "
                                      "checkpoint, input and output or error.",
                          epilog=EPILOG)
    showing.add_argument("job_id", metavar="JOB_ID")
    for sub in (listing, showing):
        sub.add_argument("--json", action="store_true", help="print JSON instead of text")
        add_schema_option(sub)
        add_settings_options(sub, kafka=False, partitions=False)
    listing.set_defaults(func=_command(_list))
    showing.set_defaults(func=_command(_show))


def _page_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"must be 1 to 1000, not {value}")
    return value


Action = Callable[["Projection", argparse.Namespace], Awaitable[int]]


def _command(action: Action) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        settings = settings_from_args(args)
        if args.data_dir is not None and args.postgres_dsn is not None:
            raise CliError("give --data-dir (the embedded log) or --postgres-dsn (the "
                           "PostgreSQL projection), not both")
        if args.data_dir is not None or (settings.data_dir is not None
                                         and not settings.postgres_dsn):
            from pathlib import Path

            assert settings.data_dir is not None
            if not Path(settings.data_dir).is_dir():
                raise CliError(f"data directory not found: {settings.data_dir}",
                               hint="give the --data-dir (or FLOWMONKEY_DATA_DIR) the "
                                    "engine uses")
            return asyncio.run(_embedded(settings, args, action))
        if not settings.postgres_dsn:
            raise CliError(NO_SOURCE, hint=f"e.g. export FLOWMONKEY_POSTGRES_DSN="
                           f"{DSN_EXAMPLE}, or --data-dir ./state")
        dsn = require_dsn(settings)
        check_schema(args.schema)
        return asyncio.run(_postgres(dsn, args, action))
    return run


async def _embedded(settings: Any, args: argparse.Namespace, action: Action) -> int:
    from flowmonkey.cli.read_models import project_log
    from flowmonkey.projections.memory import MemoryProjection

    projection = MemoryProjection()
    await projection.start()
    try:
        await project_log(settings, projection, "flowmonkey-jobs")
        return await action(projection, args)
    finally:
        await projection.close()


async def _postgres(dsn: str, args: argparse.Namespace, action: Action) -> int:
    import asyncpg

    from flowmonkey.cli.read_models import require_table
    from flowmonkey.projections.postgres import PostgresProjection

    await require_table(dsn, args.schema, "fm_jobs")
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
        page = await projection.list_jobs(
            status=args.status, type=args.type, execution_id=args.execution,
            worker_id=args.worker, limit=args.limit, cursor=args.cursor)
    except InvalidCursorError as exc:
        raise CliError(str(exc), hint="pass the --cursor a previous page printed, "
                                      "unchanged") from None
    if args.json:
        print(json.dumps({"items": [_json(j) for j in page.items],
                          "nextCursor": page.next_cursor}, indent=2))
        return EXIT_OK
    if not page.items:
        print("no jobs" + (" match" if _filtered(args) else ""))
        return EXIT_OK
    for job in page.items:
        print(_line(job))
    print(f"{len(page.items)} job{'' if len(page.items) == 1 else 's'}")
    if page.next_cursor is not None:
        print(f"more: --cursor {page.next_cursor}")
    return EXIT_OK


def _filtered(args: argparse.Namespace) -> bool:
    return any(v is not None for v in (args.status, args.type, args.execution, args.worker,
                                       args.cursor))


def _line(job: JobRecord) -> str:
    progress = f"  {job.progress_percent:g}%" if job.progress_percent is not None else ""
    worker = f"  worker {job.worker_id}" if job.worker_id else ""
    return (f"{job.job_id}  {job.status.value:<9}  {job.type}  execution "
            f"{job.execution_id}  attempt {job.attempt}  epoch {job.epoch}{worker}"
            f"{progress}  created {_when(job.created_at)}")


def _when(moment: Any) -> str:
    from flowmonkey.api.times import iso_utc

    return iso_utc(moment) if moment is not None else "-"


async def _show(projection: Projection, args: argparse.Namespace) -> int:
    job = await projection.get_job(args.job_id)
    if job is None:
        raise CliError(f"job {args.job_id!r} not found", exit_code=EXIT_FAILED,
                       hint="list the jobs with `flowmonkey jobs list`")
    if args.json:
        print(json.dumps(_json(job), indent=2))
        return EXIT_OK
    print(_details(job))
    return EXIT_OK


VALUE_CHARS = 500
"""How much of a value (input, output, checkpoint, error) the text shows."""


def _value(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > VALUE_CHARS:
        return text[:VALUE_CHARS] + f"… ({len(text)} characters; --json shows all)"
    return text


def _details(job: JobRecord) -> str:
    pretty = _value
    lines = [
        f"job        {job.job_id}",
        f"status     {job.status.value}",
        f"type       {job.type}  (flow {job.flow_id or '?'}, step {job.step_id}, attempt "
        f"{job.attempt})",
        f"execution  {job.execution_id}" + (f"  tenant {job.tenant_id}" if job.tenant_id
                                            else ""),
        f"claims     {job.claims}  (epoch {job.epoch}, lease expiries "
        f"{job.lease_expiries})",
        f"worker     {job.worker_id or '-'}  instance {job.instance_id or '-'}",
        f"created    {_when(job.created_at)}",
        f"claimed    {_when(job.claimed_at)}",
        f"lease to   {_when(job.lease_expires_at)}",
        f"deadline   {_when(job.deadline_at)}  (timeout {job.timeout_ms} ms, heartbeat "
        f"{job.heartbeat_ms} ms)",
        f"ended      {_when(job.ended_at)}",
        f"updated    {_when(job.updated_at)}",
    ]
    if job.progress_percent is not None:
        lines.append(f"progress   {job.progress_percent:g}%"
                     + (f"  {job.progress_message}" if job.progress_message else ""))
    lines.append(f"checkpoint {job.checkpoint_seq}"
                 + (f"  {pretty(job.checkpoint_data)}" if job.checkpoint_seq else ""))
    lines.append(f"input      {pretty(job.input)}")
    if job.output is not None:
        lines.append(f"output     {pretty(job.output)}")
    if job.error is not None:
        lines.append(f"error      {pretty(job.error)}")
    return "\n".join(lines)


def _json(job: JobRecord) -> dict[str, Any]:
    """The job as the HTTP API answers it: camelCase keys, ISO-8601 UTC times."""
    from flowmonkey.api.schemas import JobOut

    dumped: dict[str, Any] = JobOut.of(job).model_dump(mode="json", by_alias=True)
    return dumped
