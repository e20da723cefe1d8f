"""``flowmonkey log check|repair``: find and repair damage in the durable embedded log.

The rules and what repair does are in :mod:`flowmonkey.log._embedded_recovery`; this
module only parses options and prints.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowmonkey.cli.common import EXIT_FAILED, EXIT_OK, CliError
from flowmonkey.cli.options import add_actions, add_command
from flowmonkey.settings import ENV_DATA_DIR

if TYPE_CHECKING:
    from flowmonkey.cli.options import Subparsers

EPILOG = """\
`check` reads every segment, the commit journal and the groups' offsets, and reports
per partition: intact records, committed end, damaged byte ranges (with the offsets
and executions after them), a torn uncommitted tail (which the next start moves to a
<segment>.torn-<time> file by itself), and group offsets past a partition's end. It
changes nothing.

`repair` moves each damaged byte range to a <segment>.damaged-<time> file next to its
segment, keeps every intact record after it at its own offset, writes an empty
placeholder record (header flowmonkey-lost-record) at each offset whose record was
lost, so that no stored offset moves, keeps each group's offset (never past the end),
moves a damaged journal or offsets file aside, and writes a fresh journal. Nothing is
deleted. Stop every process using the directory first (they hold its lock).

examples:
  flowmonkey log check --data-dir ./state
  flowmonkey log check --data-dir ./state --json > check.json
  flowmonkey log repair --data-dir ./state
  FLOWMONKEY_DATA_DIR=./state flowmonkey log check

exit codes: 0 no damage (check) or repaired (repair), 1 damage found (check) or the
            directory is in use, 2 bad input (no such data directory)
"""


def register_log(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers, "log", help="check or repair the durable embedded log",
        description="Check a durable embedded log's data directory for damage, or "
                    "repair it without losing an intact record.",
        epilog=EPILOG)
    actions = add_actions(parser, "log_action", "check or repair")
    check = add_command(actions, "check", help="report damage; change nothing",
                        description="Report damaged records, torn tails and offsets past "
                                    "a partition's end; change nothing.",
                        epilog=EPILOG)
    check.add_argument("--json", action="store_true",
                       help="print one JSON document instead of text")
    repair = add_command(actions, "repair", help="quarantine damaged bytes, keep the rest",
                         description="Move damaged bytes to side files, keep every intact "
                                     "record, reconcile the groups' offsets.",
                         epilog=EPILOG)
    for sub in (check, repair):
        sub.add_argument("--data-dir", metavar="DIR",
                         help=f"the embedded log's directory (env {ENV_DATA_DIR})")
    check.set_defaults(func=run_check)
    repair.set_defaults(func=run_repair)


def _data_dir(args: argparse.Namespace) -> Path:
    value = args.data_dir or os.environ.get(ENV_DATA_DIR)
    if not value:
        raise CliError("no data directory given: pass --data-dir DIR or set "
                       f"{ENV_DATA_DIR}", hint="e.g. flowmonkey log check --data-dir ./state")
    return Path(value)


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _in_use(exc: Exception) -> CliError:
    return CliError(str(exc), exit_code=EXIT_FAILED,
                    hint="stop the process using it (flowmonkey dev, api, processor, …) "
                         "and run this again")


def _open_error(exc: Exception) -> CliError:
    if "already in use" in str(exc):
        return _in_use(exc)
    return CliError(str(exc), hint="check --data-dir (or FLOWMONKEY_DATA_DIR): it names the "
                                   "directory given to `flowmonkey dev` or the service")


def run_check(args: argparse.Namespace) -> int:
    from flowmonkey.errors import LogError
    from flowmonkey.log._embedded_recovery import repair_command
    from flowmonkey.log._embedded_repair import check

    root = _data_dir(args)
    try:
        report = check(root, None if args.json else _progress)
    except LogError as exc:
        raise _open_error(exc) from None
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_check(report)
        if not report["ok"]:
            print(f"damage found: repair with `{repair_command(root)}`", file=sys.stderr)
    return EXIT_OK if report["ok"] else EXIT_FAILED


def _print_check(report: dict[str, Any]) -> None:
    journal = report["journal"]
    state = journal["state"]
    if journal["problem"]:
        state += f" ({journal['problem']}; the segments' checksums decide what is committed)"
    if journal["torn_bytes"]:
        state += f" (a torn last entry of {journal['torn_bytes']} bytes: an append that did " \
                 "not commit)"
    print(f"data dir {report['data_dir']}")
    print(f"journal: {state}")
    for part in report["partitions"]:
        where = f"{part['topic']}/{part['partition']}"
        status = "DAMAGED" if part["damaged"] else "ok"
        print(f"  {where:<32} {part['records']:>10} records  committed end "
              f"{part['committed_end']:<10} {status}")
        for damage in part["damaged_ranges"]:
            span = (f"bytes {damage['start']}..{damage['end'] - 1}" if damage["end"] >
                    damage["start"] else f"records missing before byte {damage['start']}")
            print(f"      {damage['file']}: {span}, from offset {damage['offset']}")
        if part["torn_tail_bytes"]:
            print(f"      torn uncommitted tail: {part['torn_tail_bytes']} bytes (moved to a "
                  ".torn-* file next to the segment on the next start)")
    for bad in report["bad_files"]:
        print(f"  {bad['file']}: {bad['reason']}")
    for past in report["offsets_past_end"]:
        print(f"  group \"{past['group']}\": offset {past['offset']} on {past['topic']}/"
              f"{past['partition']} is past the partition's end {past['end']}")
    if report["problems"]:
        print("problems:")
        for line in report["problems"]:
            print(f"  - {line}")
    else:
        print("no damage: every committed record is intact")


def run_repair(args: argparse.Namespace) -> int:
    from flowmonkey.errors import LogError
    from flowmonkey.log._embedded_recovery import check_command
    from flowmonkey.log._embedded_repair import repair

    root = _data_dir(args)
    try:
        report = repair(root, progress=_progress)
    except LogError as exc:
        raise _open_error(exc) from None
    for action in report.actions:
        print(action)
    print(f"kept {report.records_kept} record(s); {report.records_lost} lost record(s) "
          "replaced by placeholders at their offsets; "
          f"{report.quarantined_bytes} damaged bytes "
          f"and {report.torn_bytes} torn bytes moved to side files next to their segments")
    print(f"check again with `{check_command(root)}`", file=sys.stderr)
    return EXIT_OK
